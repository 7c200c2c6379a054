use super::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32
const ED_B64: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="; // bytes 32..64

fn sample() -> String {
    format!(
        r#"# kistrel directory
version = 1

[[relay]]
nickname = "r1"
identity = "0123456789abcdef0123456789abcdef01234567"
ntor_key = "{KEY_B64}"
ed25519_identity = "{ED_B64}"
address = "127.0.0.1:5001"
bandwidth = 1000
flags = ["Guard", "Exit", "Fast", "Stable", "Running", "Valid"]
family = ["r2"]
exit_policy = ["accept 127.0.0.0/8:*", "reject *:*"]

[[relay]]
nickname = "r2"
identity = "1111111111111111111111111111111111111111"
ntor_key = "{}"
ed25519_identity = "{ED_B64}"
address = "[::1]:5002"
bandwidth = 500
flags = ["Running", "Valid"]
family = ["$0123456789ABCDEF0123456789ABCDEF01234567"]

[[relay]]
nickname = "r3"
identity = "2222222222222222222222222222222222222222"
ntor_key = "{KEY_B64}"
ed25519_identity = "{ED_B64}"
address = "10.0.0.3:5003"
bandwidth = 700
flags = ["Running", "Valid"]
family = ["r1"]
"#,
        KEY_B64.trim_end_matches('=')
    )
}

#[test]
fn test_parse_fields() {
    let dir = Directory::parse(&sample()).unwrap();
    assert_eq!(dir.relays().len(), 3);
    let r1 = &dir.relays()[0];
    assert_eq!(r1.nickname, "r1");
    assert_eq!(
        hex::encode(r1.identity),
        "0123456789abcdef0123456789abcdef01234567"
    );
    let want_key: Vec<u8> = (0u8..32).collect();
    assert_eq!(r1.ntor_key.to_vec(), want_key);
    assert_eq!(r1.address, "127.0.0.1:5001".parse().unwrap());
    assert_eq!(r1.bandwidth, 1000);
    assert!(r1.flags.contains(Flag::Guard) && r1.flags.contains(Flag::Exit));
    assert_eq!(
        r1.exit_policy.to_string(),
        "accept 127.0.0.0/8:*, reject *:*"
    );
    let r2 = &dir.relays()[1];
    assert_eq!(r2.ntor_key.to_vec(), want_key, "unpadded base64 accepted");
    assert_eq!(r2.address, "[::1]:5002".parse().unwrap());
    assert!(r2.exit_policy.is_reject_all());
    assert!(!r2.flags.contains(Flag::Guard));
}

#[test]
fn test_family_is_mutual() {
    let dir = Directory::parse(&sample()).unwrap();
    // r1 names r2 (nickname) and r2 names r1 ($hex): family.
    assert!(dir.same_family(0, 1) && dir.same_family(1, 0));
    // r3 names r1 but r1 does not name r3: no family.
    assert!(!dir.same_family(0, 2) && !dir.same_family(2, 0));
}

#[test]
fn test_round_trip() {
    let dir = Directory::parse(&sample()).unwrap();
    let again = Directory::parse(&dir.to_toml()).unwrap();
    assert_eq!(dir, again);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let syn = synthetic_directory(300, &mut rng);
    assert_eq!(Directory::parse(&syn.to_toml()).unwrap(), syn);
}

#[test]
fn test_weights_given_and_written_back() {
    let mut text = sample();
    text = text.replace(
        "version = 1\n",
        "version = 1\n[weights]\nWgg = 5900\nWgm = 5900\nWgd = 0\nWmg = 4100\nWmm = 10000\nWme = 0\nWmd = 0\nWeg = 10000\nWee = 10000\nWed = 10000\nWbd = 0\n",
    );
    let dir = Directory::parse(&text).unwrap();
    assert_eq!(dir.weights().wgg, 5900);
    assert_eq!(dir.weights().wmg, 4100);
    assert!(dir.to_toml().contains("Wgg = 5900"));
    assert_eq!(Directory::parse(&dir.to_toml()).unwrap(), dir);
}

fn err_of(text: &str) -> (usize, DirProblem) {
    match Directory::parse(text) {
        Err(DirError::Malformed { line, problem }) => (line, problem),
        other => panic!("expected a malformed error, got {other:?}"),
    }
}

#[test]
fn test_rejections_name_the_line() {
    let base = sample();
    type Case = (String, usize, fn(&DirProblem) -> bool);
    let cases: Vec<Case> = vec![
        (
            base.replace("bandwidth = 500", "bandwidth = 500\ncolour = \"red\""),
            22,
            |p| matches!(p, DirProblem::Toml(m) if m.contains("colour")),
        ),
        (
            base.replace("0123456789abcdef0123456789abcdef01234567\"", "0123xyz\""),
            6,
            |p| matches!(p, DirProblem::BadIdentity(_)),
        ),
        (
            base.replace(
                "1111111111111111111111111111111111111111",
                "0123456789abcdef0123456789abcdef01234567",
            ),
            17,
            |p| matches!(p, DirProblem::DuplicateIdentity(_)),
        ),
        (
            base.replacen(
                &format!("ntor_key = \"{KEY_B64}\""),
                "ntor_key = \"AAEC\"",
                1,
            ),
            7,
            |p| matches!(p, DirProblem::BadNtorKey(_)),
        ),
        (base.replace("10.0.0.3:5003", "10.0.0.3"), 30, |p| {
            matches!(p, DirProblem::BadAddress(_))
        }),
        (
            base.replace(
                "[\"Running\", \"Valid\"]\nfamily = [\"$",
                "[\"Running\", \"Vaild\"]\nfamily = [\"$",
            ),
            22,
            |p| matches!(p, DirProblem::UnknownFlag(f) if f == "Vaild"),
        ),
        (base.replace("reject *:*", "deny *:*"), 13, |p| {
            matches!(p, DirProblem::BadPolicy(_))
        }),
        (
            base.replace("nickname = \"r3\"", "nickname = \"r2\""),
            26,
            |p| matches!(p, DirProblem::DuplicateNickname(_)),
        ),
        (
            base.replacen(
                &format!("ed25519_identity = \"{ED_B64}\""),
                "ed25519_identity = \"AAEC\"",
                1,
            ),
            8,
            |p| matches!(p, DirProblem::BadEd25519Identity(_)),
        ),
        (
            base.replacen(&format!("ed25519_identity = \"{ED_B64}\"\n"), "", 1),
            4,
            |p| matches!(p, DirProblem::Toml(m) if m.contains("ed25519_identity")),
        ),
        (base.replace("version = 1", "version = 2"), 2, |p| {
            matches!(p, DirProblem::UnsupportedVersion(2))
        }),
        (
            base.replace("family = [\"r1\"]", "family = [\"r-1\"]"),
            33,
            |p| matches!(p, DirProblem::BadFamily(_)),
        ),
        (
            base.replace("version = 1\n", "version = 1\n[weights]\nWgg = 5900\n"),
            3,
            |p| matches!(p, DirProblem::Toml(m) if m.contains("Wgm")),
        ),
    ];
    for (text, want_line, check) in cases {
        let (line, problem) = err_of(&text);
        assert!(check(&problem), "unexpected problem {problem:?}");
        assert_eq!(line, want_line, "{problem}");
    }
}

#[test]
fn test_load_missing_file_is_io_error() {
    let err = Directory::load("/nonexistent/kistrel-dir.toml").unwrap_err();
    assert!(matches!(err, DirError::Io { .. }));
}

#[test]
fn test_computed_weights_match_totals() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let dir = synthetic_directory(2000, &mut rng);
    let (mut g, mut m, mut e, mut d) = (0i64, 0, 0, 0);
    for r in dir.relays() {
        let bw = i64::from(r.bandwidth);
        match (r.flags.contains(Flag::Guard), r.flags.contains(Flag::Exit)) {
            (true, true) => d += bw,
            (true, false) => g += bw,
            (false, true) => e += bw,
            (false, false) => m += bw,
        }
    }
    assert_eq!(*dir.weights(), PositionWeights::from_totals(g, m, e, d));
    assert_ne!(*dir.weights(), PositionWeights::flat());
}

proptest! {
    #[test]
    fn prop_parser_never_panics(s in "\\PC{0,300}") {
        let _ = Directory::parse(&s);
    }

    #[test]
    fn prop_parser_never_panics_on_mutated_sample(pos in 0usize..1200, byte in any::<u8>()) {
        let mut bytes = sample().into_bytes();
        let i = pos % bytes.len();
        bytes[i] = byte;
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = Directory::parse(&text);
        }
    }
}

#[test]
fn from_relays_applies_the_file_rules() {
    let dir = Directory::parse(&sample()).unwrap();
    let mut relays = dir.relays().to_vec();
    relays[0].nickname = "bad\"name".into();
    assert!(matches!(
        Directory::from_relays(relays, None),
        Err(DirProblem::BadNickname(_))
    ));
    let mut relays = dir.relays().to_vec();
    relays[1].family = vec!["$12".into()];
    assert!(matches!(
        Directory::from_relays(relays, None),
        Err(DirProblem::BadFamily(_))
    ));
    let mut relays = dir.relays().to_vec();
    relays[2].identity = relays[0].identity;
    assert!(matches!(
        Directory::from_relays(relays, None),
        Err(DirProblem::DuplicateIdentity(_))
    ));
    let built = Directory::from_relays(dir.relays().to_vec(), None).unwrap();
    assert_eq!(built, dir);
}

#[test]
fn type_errors_name_the_relay_and_the_key() {
    let text = sample().replacen("bandwidth = 1000", "bandwidth = \"fast\"", 1);
    let (line, problem) = err_of(&text);
    assert_eq!(text.lines().nth(line - 1).unwrap(), "bandwidth = \"fast\"");
    assert_eq!(
        problem.to_string(),
        "relay 1 \"r1\", key `bandwidth`: invalid type: string \"fast\", expected u32"
    );
    let text = sample().replacen("version = 1", "version = \"one\"", 1);
    let (_, problem) = err_of(&text);
    assert_eq!(
        problem.to_string(),
        "key `version`: invalid type: string \"one\", expected u32"
    );
}
