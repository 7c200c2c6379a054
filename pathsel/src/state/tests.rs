use super::*;
use crate::cbt::{CbtConfig, CbtEstimator};
use crate::dir::synthetic_directory;
use crate::guard::GuardSet;
use crate::select::{PathConfig, PathSelector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, UNIX_EPOCH};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kistrel-pathsel-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn sample_state() -> State {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let sel = PathSelector::new(&synthetic_directory(200, &mut rng), PathConfig::default());
    let mut gs = GuardSet::new(PathConfig::default());
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (_, ticket) = gs.pick(&sel, now, &mut rng).unwrap();
    ticket.succeeded();
    gs.process_reports(now);
    let mut est = CbtEstimator::new(CbtConfig::default());
    for i in 0..150 {
        est.add_build(200 + (i * 37) % 400);
    }
    est.add_timeout();
    State {
        guards: gs.state(),
        cbt: Some(est.state(10)),
    }
}

#[test]
fn save_then_load_round_trips() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("state");
    let state = sample_state();
    StateFile::save(&path, &state).unwrap();
    assert!(!dir.join("state.tmp").exists(), "temp file renamed away");
    let (back, warning) = StateFile::load(&path);
    assert!(warning.is_none());
    assert_eq!(back, state);
    // The restored estimator holds the same builds and timeouts.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let est = CbtEstimator::from_state(back.cbt.as_ref().unwrap(), CbtConfig::default(), &mut rng);
    assert_eq!(est.n_builds(), 150);
    assert_eq!(est.n_timeouts(), 1);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn missing_file_is_a_fresh_start_without_warning() {
    let dir = temp_dir("missing");
    let (state, warning) = StateFile::load(dir.join("nope"));
    assert_eq!(state, State::default());
    assert!(warning.is_none());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn corrupt_file_is_moved_aside_with_a_warning() {
    let dir = temp_dir("corrupt");
    let path = dir.join("state");
    let mut text = sample_state().to_text();
    text = text.replace(
        "CircuitBuildAbandonedCount 1",
        "CircuitBuildAbandonedCount one",
    );
    fs::write(&path, &text).unwrap();
    let (state, warning) = StateFile::load(&path);
    assert_eq!(state, State::default());
    let warning = warning.unwrap();
    assert!(warning.reason.contains("line "), "{warning}");
    assert_eq!(
        warning.moved_to.as_deref(),
        Some(dir.join("state.corrupt").as_path())
    );
    assert_eq!(fs::read_to_string(dir.join("state.corrupt")).unwrap(), text);
    assert!(!path.exists());
    // A second corrupt file does not overwrite the first one set aside.
    fs::write(&path, [0xff, 0xfe]).unwrap();
    let (_, warning) = StateFile::load(&path);
    let warning = warning.unwrap();
    assert!(warning.reason.contains("UTF-8"));
    assert_eq!(
        warning.moved_to.as_deref(),
        Some(dir.join("state.corrupt.1").as_path())
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn parse_errors_name_the_whole_file_line() {
    let text = sample_state().to_text();
    // Break the first Guard line: it is line 5 of the file.
    let broken = text.replacen("Guard rsa_id=", "Guard rsa_id=zz", 1);
    assert_eq!(State::parse(&broken).unwrap_err().line, 5);
    let lines = text.lines().count();
    let broken = format!("{text}Bogus 1\n");
    assert_eq!(State::parse(&broken).unwrap_err().line, lines + 1);
    assert_eq!(State::parse("KistrelStateVersion 2\n").unwrap_err().line, 1);
    assert_eq!(State::parse("[guards]\n").unwrap_err().line, 1);
}
