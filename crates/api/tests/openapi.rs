//! Invariants of the generated OpenAPI document, checked over every operation, so
//! that a new route cannot leave out what the others say: its problem responses,
//! typed ids, the rate limiter's 429, unique operation ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

/// Operations anyone may call: credentials are what they hand out or check.
const PUBLIC: &[&str] = &[
    "GET /health",
    "GET /ready",
    "GET /metrics",
    "POST /api/v1/auth/token",
    "GET /api/v1/auth/jwks",
    "GET /api/v1/auth/login",
    "GET /api/v1/auth/callback",
    "POST /api/v1/auth/refresh",
    "GET /api/v1/storage/signed",
    "POST /api/v1/webhooks/audimodal",
];

/// Ids minted elsewhere are free text: Keycloak's, OAuth clients', request ids, and
/// the audit log's resource ids (which name users and API keys too).
const FREE_IDS: &[&str] = &["keycloak_id", "client_id", "request_id", "resource_id"];

/// Error statuses whose body is not a problem: the readiness report stays a report.
const NOT_PROBLEMS: &[(&str, &str)] = &[("GET /ready", "503")];

fn document() -> Value {
    serde_json::to_value(aether_api::routes::openapi()).unwrap()
}

/// Every operation as (`METHOD /path`, operation).
fn operations(doc: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                found.push((format!("{} {path}", method.to_uppercase()), operation.clone()));
            }
        }
    }
    assert!(found.len() > 60, "the document lists only {} operations", found.len());
    found
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn operation_ids_are_unique() {
    let doc = document();
    let mut seen = HashSet::new();
    for (name, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{name} has no operationId"));
        assert!(seen.insert(id.to_owned()), "{name}: operationId {id} is used twice");
    }
}

#[test]
fn ids_in_paths_and_queries_are_uuids() {
    let doc = document();
    for (name, operation) in operations(&doc) {
        let path = name.split_once(' ').unwrap().1;
        let mut declared = BTreeSet::new();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let parameter_name = parameter["name"].as_str().unwrap();
            if parameter["in"] == "path" {
                declared.insert(parameter_name.to_owned());
                assert_eq!(parameter["required"], true, "{name}: path parameter {parameter_name} is not required");
            }
            let is_id = parameter_name == "id" || parameter_name.ends_with("_id");
            if is_id && !FREE_IDS.contains(&parameter_name) {
                let schema = resolve(&doc, &parameter["schema"]);
                assert_eq!(schema["format"], "uuid", "{name}: parameter {parameter_name} is not format: uuid");
            }
        }
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, in_template, "{name}: path parameters and the path template differ");
    }
}

#[test]
fn query_parameters_are_typed() {
    let doc = document();
    for (name, operation) in operations(&doc) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] != "query" {
                continue;
            }
            let parameter_name = parameter["name"].as_str().unwrap();
            let schema = resolve(&doc, &parameter["schema"]);
            assert!(
                !types(schema).is_empty() || schema["enum"].is_array(),
                "{name}: query parameter {parameter_name} has no type"
            );
            assert!(!types(schema).contains(&"null"), "{name}: query parameter {parameter_name} is nullable");
            if parameter_name == "limit" {
                assert_eq!(types(schema), ["integer"], "{name}: limit is not an integer");
                assert!(schema["minimum"].is_number() && schema["maximum"].is_number(), "{name}: limit is unbounded");
            }
        }
    }
}

#[test]
fn authenticated_operations_answer_401_and_everything_under_api_v1_answers_429() {
    let doc = document();
    for (name, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().unwrap();
        let secured = operation["security"].as_array().is_some_and(|list| !list.is_empty());
        if PUBLIC.contains(&name.as_str()) {
            assert!(!secured, "{name} is public but asks for a credential");
        } else {
            assert!(secured, "{name} names no security requirement (or belongs in PUBLIC)");
            assert!(responses.contains_key("401"), "{name} does not document 401");
        }
        if name.split_once(' ').unwrap().1.starts_with("/api/v1/") {
            assert!(responses.contains_key("429"), "{name} does not document 429");
        }
    }
}

#[test]
fn every_error_response_is_a_problem() {
    let doc = document();
    for (name, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            if status.parse::<u16>().unwrap() < 400 || NOT_PROBLEMS.contains(&(name.as_str(), status.as_str())) {
                continue;
            }
            let content = response["content"].as_object().unwrap_or_else(|| panic!("{name} {status}: no content"));
            let types: Vec<&String> = content.keys().collect();
            assert_eq!(types, ["application/problem+json"], "{name} {status}: not application/problem+json");
            assert_eq!(
                content["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                "{name} {status}: not the Problem schema"
            );
            assert!(
                !response["description"].as_str().unwrap_or_default().is_empty(),
                "{name} {status}: no description"
            );
        }
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    let required: Vec<&str> = problem["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for field in ["type", "title", "status", "detail", "code"] {
        assert!(required.contains(&field), "Problem.{field} is not required");
    }
}

/// Every body passes a size limit (413), and a body that cannot be read is refused
/// (400 for its framing, 422 for its content). Bodies read by `ApiJson` and
/// multipart forms are also refused by content type (415).
#[test]
fn body_taking_operations_document_their_body_problems() {
    let doc = document();
    for (name, operation) in operations(&doc) {
        let Some(content) = operation["requestBody"]["content"].as_object() else { continue };
        let responses = operation["responses"].as_object().unwrap();
        assert!(responses.contains_key("413"), "{name} takes a body but does not document 413");
        assert!(
            responses.contains_key("400") || responses.contains_key("422"),
            "{name} takes a body but documents neither 400 nor 422"
        );
        if content.contains_key("multipart/form-data") || content.contains_key("application/x-www-form-urlencoded") {
            assert!(responses.contains_key("415"), "{name} takes a form but does not document 415");
        }
    }
}

#[test]
fn websocket_routes_document_the_switch_and_their_refusals() {
    let doc = document();
    let sockets: Vec<_> = operations(&doc).into_iter().filter(|(name, _)| name.contains("/ws/")).collect();
    assert_eq!(sockets.len(), 3);
    for (name, operation) in sockets {
        let responses = operation["responses"].as_object().unwrap();
        for status in ["101", "400", "401", "404", "429"] {
            assert!(responses.contains_key(status), "{name} does not document {status}");
        }
        let headers: Vec<&str> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|parameter| parameter["in"] == "header" && parameter["required"] == true)
            .filter_map(|parameter| parameter["name"].as_str())
            .collect();
        for header in ["Connection", "Upgrade", "Sec-WebSocket-Version", "Sec-WebSocket-Key"] {
            assert!(headers.contains(&header), "{name} does not document the {header} header");
        }
    }
}

/// Response bodies serialise `None` as `null` unless a field skips it: a nullable
/// member of a response schema must then be required, and one that may be absent
/// must not be nullable.
#[test]
fn response_members_are_required_unless_absent_and_nullable_only_when_null() {
    let doc = document();
    let mut pending: Vec<String> = Vec::new();
    for (_, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            if !status.starts_with('2') {
                continue;
            }
            for media in response["content"].as_object().into_iter().flatten().map(|(_, media)| media) {
                collect_refs(&media["schema"], &mut pending);
            }
        }
    }
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let schema = &doc["components"]["schemas"][&name];
        let required: Vec<&str> =
            schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for (member, property) in schema["properties"].as_object().into_iter().flatten() {
            let nullable = types(property).contains(&"null")
                || property["oneOf"].as_array().is_some_and(|one| one.iter().any(|s| s["type"] == "null"));
            assert!(!nullable || required.contains(&member.as_str()), "{name}.{member} is nullable but not required");
            collect_refs(property, &mut pending);
        }
    }
    for name in ["NotebookResponse", "UserResponse", "JobResponse", "DocumentResponse"] {
        assert!(seen.contains(name), "{name} is not reached from any response");
    }
}

fn collect_refs(schema: &Value, into: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                into.push(reference.trim_start_matches("#/components/schemas/").to_owned());
            }
            map.values().for_each(|value| collect_refs(value, into));
        }
        Value::Array(list) => list.iter().for_each(|value| collect_refs(value, into)),
        _ => {}
    }
}

#[test]
fn ids_in_schemas_are_uuids() {
    let doc = document();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        for (member, property) in schema["properties"].as_object().into_iter().flatten() {
            if (member == "id" || member.ends_with("_id")) && !FREE_IDS.contains(&member.as_str()) {
                let format =
                    property["format"].as_str().or_else(|| property["items"]["format"].as_str()).or_else(|| {
                        property["oneOf"].as_array().and_then(|one| one.iter().find_map(|s| s["format"].as_str()))
                    });
                assert_eq!(format, Some("uuid"), "{name}.{member} is not format: uuid");
            }
        }
    }
}

/// The document's callback URL pattern offers exactly the URLs the server takes from
/// any upload: those `CallbackUrl::parse` accepts and the default outbound policy lets
/// through. Schemathesis found the two apart once (`http://0.A*` was accepted).
#[test]
fn the_callback_url_pattern_is_what_the_server_accepts() {
    use aether_domain::job::CallbackUrl;
    use aether_domain::outbound::OutboundPolicy;

    let doc = document();
    let pattern = doc["components"]["schemas"]["CallbackUrl"]["pattern"].as_str().expect("a CallbackUrl pattern");
    let pattern = fancy_regex::Regex::new(pattern).expect("the pattern compiles");
    let policy = OutboundPolicy::default();
    let cases = [
        "https://hooks.example.com/aether",
        "http://Hooks.Example.COM:8443/a?b=1#c",
        "http://a.b-c.d/",
        "http://0.A",
        "http://0.A*",
        "http://a.1b/",
        "http://example.com:65535",
        "http://example.com:65536",
        "http://example.com:0",
        "http://example.com:080",
        "http://example.com?x",
        "http://example.com/a b",
        "http://example.com/\u{e9}",
        "http://user@example.com/",
        "HTTP://example.com/",
        " http://example.com/",
        "http://example.com./",
        "http://example..com/",
        "http://-a.example.com/",
        "http://xn--bcher-kva.example/",
        "http://XN--bcher-kva.example/",
        "http://b\u{fc}cher.example/",
        "http://printer.local/",
        "http://printer.LOCAL/",
        "http://home.arpa/",
        "http://a.home.arpa:8080/",
        "http://metadata.google.internal/",
        "http://localhost/",
        "http://redis:6379/",
        "http://127.0.0.1/",
        "http://8.8.8.8/",
        "http://[::1]/",
        "http://[2001:db8::1]/",
        "http://0x7f.1/",
        "ftp://example.com/",
    ];
    let agree = |case: &str| {
        let offered = pattern.is_match(case).expect("the pattern runs");
        let accepted =
            CallbackUrl::parse(case).is_ok_and(|url| policy.check_url(url.scheme(), url.host().as_deref()).is_ok());
        assert_eq!(offered, accepted, "{case:?}: the document offers it: {offered}, the server accepts it: {accepted}");
    };
    // Each case, then each with one character inserted or replaced, as a fuzzer mutates.
    let alphabet: Vec<char> = (' '..='~').chain(['\u{e9}', '\t']).collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % u64::try_from(bound).unwrap()).unwrap()
    };
    for case in cases {
        agree(case);
        let chars: Vec<char> = case.chars().collect();
        for _ in 0..300 {
            let mut mutated = chars.clone();
            let at = next(mutated.len() + 1);
            let with = alphabet[next(alphabet.len())];
            if at < mutated.len() && next(2) == 0 {
                mutated[at] = with;
            } else {
                mutated.insert(at, with);
            }
            agree(&mutated.into_iter().collect::<String>());
        }
    }
}
