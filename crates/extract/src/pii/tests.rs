use super::*;

/// The (kind, matched text) pairs found in `text`.
fn found(text: &str) -> Vec<(PiiKind, &str)> {
    scan(text).into_iter().map(|f| (f.kind, &text[f.start..f.end])).collect()
}

fn kinds(text: &str) -> Vec<PiiKind> {
    scan(text).into_iter().map(|f| f.kind).collect()
}

#[test]
fn emails() {
    assert_eq!(
        found("mail jane.doe+tag@mail.example.co.uk now"),
        vec![(PiiKind::Email, "jane.doe+tag@mail.example.co.uk")]
    );
    assert_eq!(found("<ann@example.com>."), vec![(PiiKind::Email, "ann@example.com")]);
    assert!(kinds("user@localhost or a..b@example.com or @example.com").is_empty());
}

#[test]
fn phones() {
    for phone in
        ["+44 20 7946 0958", "+1 (415) 555-0132", "(415) 555-0132", "415-555-0132", "415.555.0132", "+4915112345678"]
    {
        assert_eq!(found(&format!("call {phone} today")), vec![(PiiKind::Phone, phone)], "{phone}");
    }
    assert_eq!(found("tel 1-800-555-0199."), vec![(PiiKind::Phone, "1-800-555-0199")]);
    for not_phone in [
        "order 12345678 shipped",
        "call 123-456-7890",       // area codes never start with 1
        "id 415-555-01321",        // longer token
        "serial 4155550132",       // bare digit run
        "score +12 34",            // too few digits
        "ratio 1.5 and 2024-2025", // ranges
    ] {
        assert!(kinds(not_phone).is_empty(), "{not_phone}: {:?}", found(not_phone));
    }
}

#[test]
fn credit_cards() {
    for card in ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500000000000004", "3782 822463 10005"] {
        assert_eq!(found(&format!("card {card}, exp 12/27")), vec![(PiiKind::CreditCard, card)], "{card}");
    }
    assert_eq!(found("4111 1111 1111 1111 2024"), vec![(PiiKind::CreditCard, "4111 1111 1111 1111")]);
    assert_eq!(found("4111 1111 1111 1111 2024-05-01"), vec![(PiiKind::CreditCard, "4111 1111 1111 1111")]);
    assert!(kinds("x4111111111111111").is_empty());
    for not_card in [
        "4111 1111 1111 1112", // fails Luhn
        "1234567812345670",    // Luhn-valid, but no issuer starts with 1
        "0000 0000 0000 0000", // Luhn-valid zeros
        "4111 1111-1111 1111", // mixed separators
        "41111 1111 1111 111", // wrong grouping
    ] {
        assert!(!kinds(not_card).contains(&PiiKind::CreditCard), "{not_card}");
    }
}

#[test]
fn luhn_checksum() {
    assert!(luhn("79927398713"));
    assert!(!luhn("79927398710"));
}

#[test]
fn ssns() {
    assert_eq!(found("SSN 123-45-6789."), vec![(PiiKind::Ssn, "123-45-6789")]);
    for not_ssn in
        ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "1123-45-6789", "123-45-67890"]
    {
        assert!(kinds(not_ssn).is_empty(), "{not_ssn}: {:?}", found(not_ssn));
    }
}

#[test]
fn ibans() {
    assert_eq!(found("IBAN: DE89 3704 0044 0532 0130 00."), vec![(PiiKind::Iban, "DE89 3704 0044 0532 0130 00")]);
    assert_eq!(found("pay GB82WEST12345698765432 now"), vec![(PiiKind::Iban, "GB82WEST12345698765432")]);
    assert_eq!(found("GB82 WEST 1234 5698 7654 32 BANK"), vec![(PiiKind::Iban, "GB82 WEST 1234 5698 7654 32")]);
    assert_eq!(found("NO9386011117947"), vec![(PiiKind::Iban, "NO9386011117947")]);
    for not_iban in [
        "DE89 3704 0044 0532 0130 01", // checksum
        "DE89 3704 0044 0532 0130",    // too short for DE
        "XX89 3704 0044 0532 0130 00", // no such country
        "ADE89370400440532013000",     // glued to a word
    ] {
        assert!(!kinds(not_iban).contains(&PiiKind::Iban), "{not_iban}");
    }
}

#[test]
fn ip_addresses() {
    for ip in
        ["192.168.1.20", "8.8.8.8", "2001:db8::8a2e:370:7334", "fe80::1", "2001:0db8:0000:0000:0000:ff00:0042:8329"]
    {
        assert_eq!(found(&format!("from {ip}, then")), vec![(PiiKind::IpAddress, ip)], "{ip}");
    }
    assert_eq!(found("bind 10.0.0.1:8080"), vec![(PiiKind::IpAddress, "10.0.0.1")]);
    assert_eq!(found("route 192.168.0.0/16"), vec![(PiiKind::IpAddress, "192.168.0.0")]);
    for not_ip in
        ["999.1.1.1", "1.2.3.4.5", "256.1.1.1", "at 12:30:45 sharp", "use std::io::Read;", "v1.2.3", "dead::beef"]
    {
        assert!(kinds(not_ip).is_empty(), "{not_ip}: {:?}", found(not_ip));
    }
}

#[test]
fn mac_addresses() {
    assert_eq!(found("nic 00:1A:2B:3C:4D:5E up"), vec![(PiiKind::MacAddress, "00:1A:2B:3C:4D:5E")]);
    assert_eq!(found("nic 00-1a-2b-3c-4d-5e"), vec![(PiiKind::MacAddress, "00-1a-2b-3c-4d-5e")]);
    assert!(kinds("00:1A-2B:3C:4D:5E").is_empty());
    assert!(kinds("00:1A:2B:3C:4D:5E:6F").is_empty());
}

#[test]
fn dates_of_birth_need_a_label() {
    assert_eq!(found("DOB: 04/12/1985"), vec![(PiiKind::DateOfBirth, "04/12/1985")]);
    assert_eq!(found("Date of birth 1985-12-04."), vec![(PiiKind::DateOfBirth, "1985-12-04")]);
    assert_eq!(found("born on March 3rd, 1990"), vec![(PiiKind::DateOfBirth, "March 3rd, 1990")]);
    assert!(kinds("Meeting on 04/12/1985").is_empty());
    assert!(kinds("DOB: 13/13/1985").is_empty());
}

#[test]
fn passport_numbers_need_a_label() {
    assert_eq!(found("Passport No. X1234567"), vec![(PiiKind::PassportNumber, "X1234567")]);
    assert_eq!(found("passport number: 123456789"), vec![(PiiKind::PassportNumber, "123456789")]);
    assert!(kinds("passport holder").is_empty());
    assert!(kinds("ticket X1234567").is_empty());
}

#[test]
fn findings_are_sorted_and_disjoint() {
    let text = "Ann <ann@example.com>, +1 (415) 555-0132, card 4111 1111 1111 1111, SSN 123-45-6789, \
                IBAN DE89 3704 0044 0532 0130 00, host 10.0.0.1, mac 00:1A:2B:3C:4D:5E, DOB: 1985-12-04.";
    let findings = scan(text);
    assert_eq!(
        findings.iter().map(|f| f.kind).collect::<Vec<_>>(),
        vec![
            PiiKind::Email,
            PiiKind::Phone,
            PiiKind::CreditCard,
            PiiKind::Ssn,
            PiiKind::Iban,
            PiiKind::IpAddress,
            PiiKind::MacAddress,
            PiiKind::DateOfBirth
        ]
    );
    assert!(findings.windows(2).all(|w| w[0].end <= w[1].start));
    assert!(findings.iter().all(|f| text.is_char_boundary(f.start) && text.is_char_boundary(f.end)));
}

#[test]
fn more_specific_kind_wins_overlaps() {
    let candidates = vec![
        Finding { kind: PiiKind::Phone, start: 0, end: 10 },
        Finding { kind: PiiKind::CreditCard, start: 2, end: 21 },
        Finding { kind: PiiKind::Phone, start: 21, end: 30 },
        Finding { kind: PiiKind::IpAddress, start: 25, end: 35 },
    ];
    let kept = resolve_overlaps(candidates);
    assert_eq!(
        kept,
        vec![
            Finding { kind: PiiKind::CreditCard, start: 2, end: 21 },
            Finding { kind: PiiKind::IpAddress, start: 25, end: 35 }
        ]
    );
}

#[test]
fn redaction_styles() {
    let text = "Write to ann@example.com or call (415) 555-0132.";
    let findings = scan(text);
    assert_eq!(redact(text, &findings, RedactionStyle::Mask), "Write to [REDACTED:EMAIL] or call [REDACTED:PHONE].");
    assert_eq!(redact(text, &findings, RedactionStyle::Remove), "Write to  or call .");
    let dob = "DOB: 04/12/1985";
    assert_eq!(redact(dob, &scan(dob), RedactionStyle::Mask), "DOB: [REDACTED:DATE_OF_BIRTH]");
    let card = "pay 4111 1111 1111 1111 now";
    assert_eq!(redact(card, &scan(card), RedactionStyle::Mask), "pay [REDACTED:CREDIT_CARD] now");
}

#[test]
fn redaction_ignores_bad_findings() {
    let text = "héllo world";
    let bogus = [
        Finding { kind: PiiKind::Email, start: 2, end: 3 }, // inside 'é'
        Finding { kind: PiiKind::Email, start: 7, end: 99 },
        Finding { kind: PiiKind::Email, start: 0, end: 1 },
        Finding { kind: PiiKind::Email, start: 0, end: 3 }, // overlaps the previous one
    ];
    assert_eq!(redact(text, &bogus, RedactionStyle::Remove), "éllo world");
}

#[test]
fn summary_counts_by_kind() {
    let text = "a@example.com b@example.com 10.0.0.1";
    let summary = summarize(&scan(text));
    assert_eq!(summary.get(&PiiKind::Email), Some(&2));
    assert_eq!(summary.get(&PiiKind::IpAddress), Some(&1));
    assert_eq!(summary.len(), 2);
    assert_eq!(serde_json::to_string(&summary).expect("json"), r#"{"email":2,"ip_address":1}"#);
}

#[test]
fn labels_are_screaming_snake() {
    for kind in PiiKind::ALL {
        let snake = serde_json::to_value(kind).expect("ser");
        assert_eq!(kind.label(), snake.as_str().unwrap_or_default().to_ascii_uppercase());
    }
}

#[test]
fn scanning_large_text_is_fast() {
    // Linear-time regexes: a few MB of adversarial digits and separators stay well under a second
    // even in debug builds.
    let text = "1-2.3 4:5 ".repeat(100_000) + &"9".repeat(200_000) + &"a@".repeat(100_000);
    let started = std::time::Instant::now();
    let _ = scan(&text);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
}
