//! `tollgate serve` with `grpc_listen`: Envoy's rate limit service from the binary, its
//! metrics, and a reload of the descriptor file.

mod support;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use support::{Tollgate, check_config, request, write_config};

const YAML: &str = "domain: edge
descriptors:
  - key: user
    rate_limit:
      unit: minute
      requests_per_unit: 2
";

fn request_for(user: &str) -> RateLimitRequest {
    RateLimitRequest {
        domain: "edge".to_owned(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: "user".to_owned(),
                value: user.to_owned(),
            }],
            ..Default::default()
        }],
        hits_addend: 0,
    }
}

fn config_with(yaml: &str) -> std::path::PathBuf {
    let toml = write_config(
        "tollgate.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n\n[envoy]\nconfig = \"ratelimit.yaml\"\n",
    );
    std::fs::write(toml.with_file_name("ratelimit.yaml"), yaml).expect("write yaml");
    toml
}

#[tokio::test]
async fn the_binary_serves_envoy_and_reloads_its_descriptors() {
    let toml = config_with(YAML);
    let (ok, stdout, stderr) = check_config(&toml);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("envoy:edge:user: 2/minute (fixed-window)"),
        "{stdout}"
    );

    let server = Tollgate::serve(
        &["--config", toml.to_str().expect("utf-8")],
        &["Envoy rate limit service"],
    );
    let addr = server.addr("Envoy rate limit service");
    let mut client = RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let mut codes = Vec::new();
    for _ in 0..3 {
        let response = client
            .should_rate_limit(request_for("alice"))
            .await
            .expect("an answer")
            .into_inner();
        codes.push(response.overall_code);
    }
    assert_eq!(
        codes,
        [Code::Ok as i32, Code::Ok as i32, Code::OverLimit as i32]
    );

    let metrics = request(server.api(), "GET", "/metrics", &[], "");
    assert!(
        metrics
            .body
            .contains(r#"tollgate_hits_total{policy="envoy:edge:user",outcome="denied"} 1"#),
        "{}",
        metrics.body
    );
    // The dashboard counts the descriptors too, and lists the key over the limit.
    let dashboard = request(server.api(), "GET", "/dashboard/data", &[], "").json();
    assert_eq!(
        dashboard["activity"][0]["totals"],
        serde_json::json!({"allowed": 2, "denied": 1, "shadow_denied": 0}),
        "{dashboard}"
    );
    assert_eq!(
        dashboard["top_keys"],
        serde_json::json!([{"policy": "envoy:edge:user", "key": "user=alice", "count": 1, "error": 0}])
    );

    // A looser limit, reloaded: alice's count of 2 survives only if the policy is unchanged,
    // so with 3/minute she has exactly one more.
    std::fs::write(
        toml.with_file_name("ratelimit.yaml"),
        YAML.replace(": 2", ": 3"),
    )
    .expect("rewrite yaml");
    server.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let bob = client
        .should_rate_limit(request_for("bob"))
        .await
        .expect("an answer")
        .into_inner();
    let limit = bob.statuses[0].current_limit.as_ref().expect("a limit");
    assert_eq!(
        limit.requests_per_unit, 3,
        "the new descriptors are in force"
    );
    drop(client);
    assert!(server.stop().success());
}

#[test]
fn grpc_listen_and_envoy_config_go_together() {
    let toml = write_config("tollgate.toml", "[server]\ngrpc_listen = \"127.0.0.1:0\"\n");
    let (ok, _, stderr) = check_config(&toml);
    assert!(!ok);
    assert!(
        stderr
            .contains(":2: server.grpc_listen: the Envoy rate limit service needs [envoy] config"),
        "{stderr}"
    );

    let toml = config_with(
        "domain: edge\ndescriptors:\n  - key: user\n    rate_limit:\n      unit: minit\n      requests_per_unit: 2\n",
    );
    let (ok, _, stderr) = check_config(&toml);
    assert!(!ok);
    let expected = format!(
        "{}:5: descriptors[0].rate_limit.unit: unknown unit \"minit\"",
        toml.with_file_name("ratelimit.yaml").display()
    );
    assert!(stderr.starts_with(&expected), "{stderr:?} / {expected:?}");
}
