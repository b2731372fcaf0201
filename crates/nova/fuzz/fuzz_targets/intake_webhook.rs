//! Any bytes as the release intake webhook's request (`POST /api/v1/artifacts`): a timestamp
//! header, a signature header and the body. Nothing panics; the body parses as the route's
//! `IntakeRequest` or is refused; a request signed with the team's secret verifies, the same
//! request with any byte of the body changed, or with another secret, does not; and a refusal
//! never quotes the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova::http::release_api::IntakeRequest;
use nova::release::intake;
use nova_domain::Sensitive;

const SECRET: &str = "nova_intake_0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_800_000_000;
const WINDOW: i64 = 300;

fuzz_target!(|data: &[u8]| {
    // The first two lines are the headers as sent; the rest is the body.
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(ts), Some(sig)) = (parts.next(), parts.next()) else { return };
    let body = parts.next().unwrap_or_default();
    let (ts, sig) = (String::from_utf8_lossy(ts), String::from_utf8_lossy(sig));
    let secret = Sensitive::new(SECRET.to_string());

    let _ = serde_json::from_slice::<IntakeRequest>(body);
    if let Err(why) = intake::verify(&secret, Some(&ts), Some(&sig), body, NOW, WINDOW) {
        assert!(!why.contains(SECRET), "a refusal quotes the secret");
    }
    // Signed as CI signs it: accepted within the window, refused when anything changes.
    let at = NOW - (body.len() as i64 % WINDOW);
    let signed = intake::sign(SECRET, at, body);
    assert_eq!(intake::verify(&secret, Some(&at.to_string()), Some(&signed), body, NOW, WINDOW), Ok(()));
    assert!(intake::verify(&Sensitive::new(format!("{SECRET}x")), Some(&at.to_string()), Some(&signed), body, NOW, WINDOW).is_err());
    if !body.is_empty() {
        let mut changed = body.to_vec();
        let i = usize::from(body[0]) % changed.len();
        changed[i] ^= 0x01;
        assert!(intake::verify(&secret, Some(&at.to_string()), Some(&signed), &changed, NOW, WINDOW).is_err(), "a changed body still verifies");
    }
    assert!(intake::verify(&secret, Some(&(NOW - WINDOW - 1).to_string()), Some(&intake::sign(SECRET, NOW - WINDOW - 1, body)), body, NOW, WINDOW).is_err(), "an old request verifies");
});
