//! What the Redis tests share: the Redis that `scripts/test` starts, and a key
//! prefix of each test's own.

/// The URL in AETHER_TEST_REDIS_URL; without it the test is reported NOT RUN, unless
/// AETHER_TEST_REQUIRE_SERVICES=1 makes that a failure.
pub fn redis_url() -> Option<String> {
    let Ok(url) = std::env::var("AETHER_TEST_REDIS_URL") else {
        assert!(
            std::env::var("AETHER_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "AETHER_TEST_REDIS_URL is required when AETHER_TEST_REQUIRE_SERVICES=1"
        );
        eprintln!("NOT RUN: set AETHER_TEST_REDIS_URL to run the Redis tests");
        return None;
    };
    Some(url)
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("aether-test:{}:", uuid::Uuid::now_v7().simple())
}
