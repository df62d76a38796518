//! The sizes of the futures on the hot path: each is created per request and moved into its
//! caller's future, so a larger one costs every hit copies (see BENCHMARKS.md, "Smaller
//! futures"). The bounds are regression guards, a little above today's sizes.

use std::mem::size_of_val;
use std::net::Ipv4Addr;

use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};

fn memory_handle() -> tollgate::PolicyHandle<MemoryStore> {
    Limiter::new(MemoryStore::new()).policy("api", Policy::fixed_window(Rate::per_minute(5).into()))
}

#[test]
fn a_memory_hit_future_is_no_larger_than_its_result() {
    let api = memory_handle();
    let hit = api.hit(&Ipv4Addr::new(192, 0, 2, 1));
    let size = size_of_val(&hit);
    eprintln!("PolicyHandle<MemoryStore>::hit future: {size} bytes");
    let result = size_of::<Result<tollgate::Decision, tollgate::Error>>();
    assert!(
        size <= result + 8,
        "the hit future is {size} bytes, its result {result}"
    );
    assert!(futures_executor::block_on(hit).is_ok_and(|decision| decision.allowed()));
}

#[test]
fn the_other_memory_handle_futures_stay_small() {
    let api = memory_handle();
    let sizes = [
        ("hit_cost", size_of_val(&api.hit_cost("k", 2))),
        ("peek", size_of_val(&api.peek("k"))),
        ("refund", size_of_val(&api.refund("k", 1))),
        ("overdraw", size_of_val(&api.overdraw("k", 1))),
    ];
    eprintln!("PolicyHandle<MemoryStore> futures: {sizes:?}");
    for (name, size) in sizes {
        assert!(size <= 96, "{name} future is {size} bytes");
    }
}

#[test]
fn an_admission_over_a_memory_store_holds_only_its_verdict() {
    let api = memory_handle();
    let decide = Admission::new()
        .charge(Charge::new(api.clone(), "k", 1))
        .decide();
    let size = size_of_val(&decide);
    let verdict = size_of::<tollgate::Verdict<MemoryStore>>();
    eprintln!("Admission<MemoryStore>::decide future: {size} bytes (its verdict {verdict})");
    assert!(
        size <= verdict + 8,
        "the decide future is {size} bytes, its verdict {verdict}"
    );
    assert!(futures_executor::block_on(decide).is_admitted());
    let left = futures_executor::block_on(api.peek("k")).map(|decision| decision.remaining());
    assert_eq!(left.ok(), Some(4));
}
