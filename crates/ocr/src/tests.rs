#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn languages_are_names_joined_by_plus() {
    for good in ["eng", "eng+deu", "chi_sim+eng"] {
        assert!(valid_languages(good), "{good}");
    }
    for bad in ["", "eng+", "+eng", "eng deu", "../eng", "eng;rm", &"e".repeat(101)] {
        assert!(!valid_languages(bad), "{bad}");
    }
}

#[test]
fn programs_are_found_only_where_the_path_says_and_only_if_executable() {
    let temporary = tempfile::tempdir().unwrap();
    let dir = temporary.path().to_owned();
    let program = dir.join("tesseract");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    let path = std::env::join_paths([dir.join("missing"), dir.clone()]).unwrap();
    assert_eq!(find_program("tesseract", Some(&path)), None, "not executable yet");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(find_program("tesseract", Some(&path)), Some(program));
    assert_eq!(find_program("tesseract", None), None);
}

#[test]
fn a_child_past_its_deadline_is_killed_and_its_output_bounded() {
    let started = Instant::now();
    let sleeper = run(Path::new("/bin/sleep"), &["5"], None, Instant::now() + Duration::from_millis(100));
    assert_eq!(sleeper, Err("timed out".into()));
    assert!(started.elapsed() < Duration::from_secs(3));
    let failing = run(Path::new("/bin/false"), &[] as &[&str], None, Instant::now() + Duration::from_secs(5));
    assert!(failing.unwrap_err().starts_with("exited with"));
    let echoed = run(Path::new("/bin/cat"), &[] as &[&str], Some(b"scan"), Instant::now() + Duration::from_secs(5));
    assert_eq!(echoed.unwrap(), b"scan");
    let missing = run(Path::new("/nonexistent/tesseract"), &[] as &[&str], None, Instant::now());
    assert!(missing.unwrap_err().starts_with("cannot start"));
}
