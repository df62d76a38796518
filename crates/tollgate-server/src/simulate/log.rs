//! The access log formats `tollgate simulate` reads, one request a line, parsed in place
//! (no copy of the line, no regular expression):
//!
//! - `combined`, nginx's default:
//!   `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
//!   "$http_referer" "$http_user_agent"`;
//! - `main`, the format of nginx's stock `nginx.conf`: `combined` then
//!   `"$http_x_forwarded_for"`, read as the `X-Forwarded-For` header;
//! - `json`, one object a line, its fields named by a [`JsonFields`] mapping.

use serde_json::{Map, Value};

use crate::simulate::time;

/// A log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Format {
    /// nginx's `combined`.
    Combined,
    /// nginx's `main`: `combined` and `"$http_x_forwarded_for"`.
    Main,
    /// JSON lines, with the fields to read.
    Json(JsonFields),
}

/// Which field of a JSON line holds what: `--json-field time=ts,addr=client,...`.
///
/// Names: `time` (RFC 3339, nginx's `$time_local`, or epoch seconds/milliseconds as a number
/// or a string), `addr` (the client's address), `user`, `method`, `path` (the request target),
/// `request` (`GET /path HTTP/1.1`, read when `method` or `path` is absent from a line), and
/// `header:NAME` (a request header, such as `header:x-forwarded-for=xff`). A field name with
/// dots (`req.headers.ua`) walks into nested objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonFields {
    time: String,
    addr: String,
    user: String,
    method: String,
    path: String,
    request: String,
    /// Header names (lowercase) and their fields.
    headers: Vec<(String, String)>,
}

impl Default for JsonFields {
    /// nginx's variable names: `time`, `remote_addr`, `remote_user`, `request_method`,
    /// `request_uri`, `request`.
    fn default() -> Self {
        Self {
            time: "time".to_owned(),
            addr: "remote_addr".to_owned(),
            user: "remote_user".to_owned(),
            method: "request_method".to_owned(),
            path: "request_uri".to_owned(),
            request: "request".to_owned(),
            headers: Vec::new(),
        }
    }
}

impl JsonFields {
    /// The mapping `specs` give (each `NAME=FIELD[,NAME=FIELD...]`) over the defaults.
    pub(crate) fn parse(specs: &[String]) -> Result<Self, String> {
        let mut fields = Self::default();
        for pair in specs.iter().flat_map(|spec| spec.split(',')) {
            let (name, field) = pair
                .split_once('=')
                .filter(|(name, field)| !name.is_empty() && !field.is_empty())
                .ok_or_else(|| format!("--json-field {pair:?}: expected NAME=FIELD"))?;
            let slot = match name {
                "time" => &mut fields.time,
                "addr" => &mut fields.addr,
                "user" => &mut fields.user,
                "method" => &mut fields.method,
                "path" => &mut fields.path,
                "request" => &mut fields.request,
                _ => match name.strip_prefix("header:").filter(|h| !h.is_empty()) {
                    Some(header) => {
                        fields
                            .headers
                            .push((header.to_ascii_lowercase(), field.to_owned()));
                        continue;
                    }
                    None => {
                        return Err(format!(
                            "--json-field {pair:?}: unknown name {name:?}; expected time, addr, \
                             user, method, path, request or header:NAME"
                        ));
                    }
                },
            };
            *slot = field.to_owned();
        }
        Ok(fields)
    }
}

/// One request read from a log.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// Nanoseconds since the Unix epoch.
    pub(crate) time: u64,
    /// The client's address as logged (empty if absent).
    pub(crate) addr: &'a str,
    /// The authenticated user (empty if absent or `-`).
    pub(crate) user: &'a str,
    /// The method (empty if the request line was absent or not a request).
    pub(crate) method: &'a str,
    /// The request target (empty as the method).
    pub(crate) target: &'a str,
    headers: Headers<'a>,
}

/// The request headers a line carries.
#[derive(Debug)]
enum Headers<'a> {
    /// `Referer`, `User-Agent` and, in `main`, `X-Forwarded-For` (empty when `-`).
    Nginx([(&'static str, &'a str); 3]),
    /// The mapped fields of a JSON object.
    Json(&'a [(String, String)], &'a Map<String, Value>),
}

impl<'a> Entry<'a> {
    /// The value of the header `name` (lowercase), if the line has it.
    pub(crate) fn header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value)
    }

    /// The headers the line has, by lowercase name.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        let (nginx, json) = match self.headers {
            Headers::Nginx(fields) => (Some(fields), None),
            Headers::Json(fields, object) => (None, Some((fields, object))),
        };
        let nginx = nginx.into_iter().flatten();
        let json = json.into_iter().flat_map(|(fields, object)| {
            fields
                .iter()
                .filter_map(move |(name, field)| Some((name.as_str(), text(object, field)?)))
        });
        nginx.chain(json).filter(|(_, value)| !value.is_empty())
    }
}

/// Reads lines of one format, keeping what a line's entry borrows from (a JSON object) and
/// the last timestamp's text (consecutive lines mostly share their second).
#[derive(Debug)]
pub(crate) struct Parser {
    format: Format,
    object: Map<String, Value>,
    last_time: Option<([u8; 26], u64)>,
}

impl Parser {
    pub(crate) fn new(format: Format) -> Self {
        Self {
            format,
            object: Map::new(),
            last_time: None,
        }
    }

    /// The request on `line` (without its line feed), or why it is not one.
    pub(crate) fn parse<'a>(&'a mut self, line: &'a [u8]) -> Result<Entry<'a>, &'static str> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match &self.format {
            Format::Combined => nginx(line, false, &mut self.last_time),
            Format::Main => nginx(line, true, &mut self.last_time),
            Format::Json(fields) => {
                self.object = match serde_json::from_slice(line) {
                    Ok(Value::Object(object)) => object,
                    Ok(_) => return Err("not a JSON object"),
                    Err(_) => return Err("not valid JSON"),
                };
                json(fields, &self.object)
            }
        }
    }
}

/// Splits `rest` at the first `byte`: what is before it, and what follows it.
fn split(rest: &[u8], byte: u8) -> Option<(&[u8], &[u8])> {
    let at = memchr::memchr(byte, rest)?;
    Some((&rest[..at], &rest[at + 1..]))
}

/// `-` (nginx's empty value) as the empty string.
fn dash_empty(field: &str) -> &str {
    if field == "-" { "" } else { field }
}

/// A `combined` (or `main`) line.
fn nginx<'a>(
    line: &'a [u8],
    forwarded_for: bool,
    last_time: &mut Option<([u8; 26], u64)>,
) -> Result<Entry<'a>, &'static str> {
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8")?;
    let bytes = line.as_bytes();
    let text =
        |part: &[u8]| &line[part.as_ptr() as usize - bytes.as_ptr() as usize..][..part.len()];
    let (addr, rest) = split(bytes, b' ').ok_or("no remote address")?;
    let rest = rest
        .strip_prefix(b"- ")
        .ok_or("no \" - \" after the address")?;
    let (user, rest) = split(rest, b'[').ok_or("no [time]")?;
    let user = user.strip_suffix(b" ").ok_or("no space before [time]")?;
    let (stamp, rest) = split(rest, b']').ok_or("no ] after the time")?;
    let time = match last_time {
        Some((text, nanos)) if text[..] == *stamp => *nanos,
        _ => {
            let nanos = time::time_local(stamp).ok_or("invalid time")?;
            let mut key = [0; 26];
            key.copy_from_slice(stamp);
            *last_time = Some((key, nanos));
            nanos
        }
    };
    let rest = rest.strip_prefix(b" \"").ok_or("no \"request\"")?;
    let (request, rest) = split(rest, b'"').ok_or("unterminated \"request\"")?;
    let rest = rest.strip_prefix(b" ").ok_or("no status")?;
    let (status, rest) = split(rest, b' ').ok_or("no body size")?;
    if status.len() != 3 || !status.iter().all(u8::is_ascii_digit) {
        return Err("invalid status");
    }
    let (_body, rest) = split(rest, b' ').ok_or("no \"referer\"")?;
    let mut quoted = rest;
    let mut field = || -> Result<&'a str, &'static str> {
        let rest = quoted
            .strip_prefix(b"\"")
            .ok_or("expected a quoted field")?;
        let (value, rest) = split(rest, b'"').ok_or("unterminated quoted field")?;
        quoted = rest.strip_prefix(b" ").unwrap_or(rest);
        Ok(dash_empty(text(value)))
    };
    let referer = field()?;
    let user_agent = field()?;
    let xff = if forwarded_for { field()? } else { "" };
    let (method, target) = request_line(text(request));
    Ok(Entry {
        time,
        addr: dash_empty(text(addr)),
        user: dash_empty(text(user)),
        method,
        target,
        headers: Headers::Nginx([
            ("referer", referer),
            ("user-agent", user_agent),
            ("x-forwarded-for", xff),
        ]),
    })
}

/// The method and target of a request line (`GET /path HTTP/1.1`); empty for anything else
/// (nginx logs `-` or the bytes of a broken request).
fn request_line(request: &str) -> (&str, &str) {
    let mut parts = request.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), _, None) if !method.is_empty() && target.starts_with('/') => {
            (method, target)
        }
        _ => ("", ""),
    }
}

/// The text of `field` in `object` (a number as it is written), walking dotted names.
fn value<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    if let Some(value) = object.get(field) {
        return Some(value);
    }
    let mut parts = field.split('.');
    let mut value = object.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The string in `field` of `object`, if a string.
fn text<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    value(object, field)?.as_str().map(dash_empty)
}

/// A JSON line, read through `fields`.
fn json<'a>(
    fields: &'a JsonFields,
    object: &'a Map<String, Value>,
) -> Result<Entry<'a>, &'static str> {
    let time = match value(object, &fields.time).ok_or("no time field")? {
        Value::Number(number) => number.as_f64().and_then(time::epoch),
        Value::String(text) => {
            let text = text.as_bytes();
            time::rfc3339(text)
                .or_else(|| time::epoch_text(text))
                .or_else(|| time::time_local(text))
        }
        _ => None,
    }
    .ok_or("invalid time")?;
    let (mut method, mut target) = (
        text(object, &fields.method).unwrap_or(""),
        text(object, &fields.path).unwrap_or(""),
    );
    if method.is_empty() || target.is_empty() {
        (method, target) = request_line(text(object, &fields.request).unwrap_or(""));
    }
    Ok(Entry {
        time,
        addr: text(object, &fields.addr).unwrap_or(""),
        user: text(object, &fields.user).unwrap_or(""),
        method,
        target,
        headers: Headers::Json(&fields.headers, object),
    })
}

#[cfg(test)]
mod tests {
    use super::{Format, JsonFields, Parser};

    #[test]
    fn combined_lines_are_read_in_place() {
        let mut parser = Parser::new(Format::Main);
        let line = br#"203.0.113.7 - alice [10/Oct/2000:13:55:36 -0700] "GET /api/x?y=1 HTTP/1.1" 200 2326 "-" "curl/8" "198.51.100.1""#;
        let entry = parser.parse(line).expect("a valid line");
        assert_eq!(entry.time, 971_211_336_000_000_000);
        assert_eq!((entry.addr, entry.user), ("203.0.113.7", "alice"));
        assert_eq!((entry.method, entry.target), ("GET", "/api/x?y=1"));
        assert_eq!(entry.header("user-agent"), Some("curl/8"));
        assert_eq!(entry.header("referer"), None);
        assert_eq!(entry.header("x-forwarded-for"), Some("198.51.100.1"));
        let broken = br#"203.0.113.7 - - [10/Oct/2000:13:55:36 -0700] "-" 400 0 "-" "-" "-""#;
        let entry = parser.parse(broken).expect("a valid line");
        assert_eq!((entry.method, entry.target, entry.user), ("", "", ""));
        for bad in [
            &b""[..],
            b"203.0.113.7 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 2x0 1 \"-\" \"-\" \"-\"",
            b"203.0.113.7 - - [10/Oct/2000:13:55:36] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\" \"-\"",
            b"203.0.113.7 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 1 \"-\"",
        ] {
            assert!(parser.parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn json_lines_follow_the_mapping() {
        let fields = JsonFields::parse(&[
            "time=ts,addr=client".to_owned(),
            "header:X-Api-Key=req.key".to_owned(),
        ])
        .expect("a valid mapping");
        let mut parser = Parser::new(Format::Json(fields));
        let line = br#"{"ts": 971211336.5, "client": "203.0.113.7", "request": "POST /login HTTP/2.0", "req": {"key": "k1"}}"#;
        let entry = parser.parse(line).expect("a valid line");
        assert_eq!(entry.time, 971_211_336_500_000_000);
        assert_eq!(
            (entry.addr, entry.method, entry.target),
            ("203.0.113.7", "POST", "/login")
        );
        assert_eq!(entry.header("x-api-key"), Some("k1"));
        assert_eq!(
            parser.parse(b"[1]").expect_err("an array"),
            "not a JSON object"
        );
        assert_eq!(
            parser
                .parse(br#"{"ts": "yesterday"}"#)
                .expect_err("no time"),
            "invalid time"
        );
        assert!(JsonFields::parse(&["colour=c".to_owned()]).is_err());
    }
}
