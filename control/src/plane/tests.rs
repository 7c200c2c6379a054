//! The plane over bare queues: what reaches which worker, what is published, what is saved.

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use crossbeam_channel::bounded;
use kistrel_base::control::{CircuitEvent, CircuitKey};
use kistrel_engine::relay::RelayStats;
use kistrel_engine::runtime::WorkerStats;
use kistrel_pathsel::dir::synthetic_directory;
use kistrel_pathsel::{State, StateFile};

use super::*;
use crate::publish::NoPublish;

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// What a plane published.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<(Vec<WorkerStats>, Vec<ControlFigures>)>>);

impl Publish for Recorder {
    fn worker(&mut self, stats: &WorkerStats) {
        self.0.lock().unwrap().0.push(stats.clone());
    }
    fn control(&mut self, figures: &ControlFigures) {
        self.0.lock().unwrap().1.push(figures.clone());
    }
}

struct Bench {
    plane: ControlPlane,
    events: Sender<WorkerEvent>,
    commands: Vec<Receiver<Command>>,
}

fn paths() -> PathControl {
    let mut rng = ChaCha12Rng::seed_from_u64(5);
    let dir = synthetic_directory(50, &mut rng);
    let core = ControlCore::new(
        &dir,
        PathConfig::default(),
        CbtConfig::default(),
        &State::default(),
        &mut rng,
    );
    PathControl::new(core, rng)
}

/// A plane over two workers whose command queues hold `capacity` commands.
fn bench(capacity: usize, publish: Box<dyn Publish>, paths: Option<PathControl>) -> Bench {
    let (events, rx) = bounded(64);
    let (txs, commands): (Vec<_>, Vec<_>) = (0..2).map(|_| bounded(capacity)).unzip();
    let mut plane = ControlPlane::new(rx, txs, publish);
    if let Some(p) = paths {
        plane = plane.with_paths(p);
    }
    Bench {
        plane,
        events,
        commands,
    }
}

fn event(ev: CircuitEvent) -> WorkerEvent {
    WorkerEvent::Circuit(ev)
}

fn need(worker: usize, seq: u64) -> WorkerEvent {
    let circuit = CircuitKey { worker, seq };
    WorkerEvent::Circuit(CircuitEvent::NeedCircuit {
        circuit,
        target: None,
    })
}

fn commands(rx: &Receiver<Command>) -> Vec<CircuitCommand> {
    rx.try_iter()
        .map(|c| match c {
            Command::Circuit(c) => c,
            Command::Shutdown => panic!("the plane never shuts workers down"),
        })
        .collect()
}

#[test]
fn commands_go_to_the_worker_that_owns_the_circuit() {
    let mut b = bench(8, Box::new(NoPublish), Some(paths()));
    assert!(!b.plane.is_ready());
    b.events.send(need(1, 7)).unwrap();
    b.plane.turn(at(10), wall());
    assert!(commands(&b.commands[0]).is_empty());
    let got = commands(&b.commands[1]);
    let [CircuitCommand::BuildCircuit {
        circuit, deadline, ..
    }] = got.as_slice()
    else {
        panic!("{got:?}");
    };
    assert_eq!(*circuit, CircuitKey { worker: 1, seq: 7 });
    assert_eq!(
        *deadline,
        at(10) + Duration::from_secs(60),
        "CircuitBuildTimeout"
    );
    assert_eq!(
        b.plane.poll_timeout(),
        Some(at(10) + Duration::from_secs(60))
    );
    // Built: the client is ready.
    let built = CircuitEvent::CircuitBuilt {
        circuit: *circuit,
        build_time: Duration::from_millis(300),
    };
    b.events.send(event(built)).unwrap();
    b.plane.turn(at(400), wall());
    assert!(b.plane.is_ready());
    assert_eq!(b.plane.paths().unwrap().core().cbt().n_builds(), 1);
    assert_eq!(b.plane.poll_timeout(), None);
}

#[test]
fn the_close_deadline_sends_close_circuit_to_the_owner() {
    let mut b = bench(8, Box::new(NoPublish), Some(paths()));
    b.events.send(need(0, 1)).unwrap();
    b.plane.turn(at(0), wall());
    let _ = commands(&b.commands[0]);
    b.plane.turn(at(59_999), wall());
    assert!(commands(&b.commands[0]).is_empty());
    b.plane.turn(at(60_000), wall());
    let close = CircuitCommand::CloseCircuit {
        circuit: CircuitKey { worker: 0, seq: 1 },
    };
    assert_eq!(commands(&b.commands[0]), vec![close]);
    let stats = b.plane.figures().circuits.unwrap();
    assert_eq!((stats.circuits_closed, stats.closes_confirmed), (1, 0));
}

#[test]
fn a_full_command_queue_drops_and_counts_and_the_figures_show_it() {
    let rec = Recorder::default();
    let mut b = bench(1, Box::new(rec.clone()), Some(paths()));
    b.plane.turn(at(0), wall());
    for seq in 0..3 {
        b.events.send(need(1, seq)).unwrap();
    }
    b.plane.turn(at(1), wall());
    assert_eq!(commands(&b.commands[1]).len(), 1, "the queue holds one");
    assert_eq!(b.plane.figures().commands_dropped, vec![0, 2]);
    let published = rec.0.lock().unwrap().1.clone();
    assert_eq!(published.len(), 2, "at start, then once changed");
    assert_eq!(published[0].commands_dropped, vec![0, 0]);
    assert_eq!(published[1].commands_dropped, vec![0, 2]);
    assert_eq!(published[1].circuits.unwrap().circuits_launched, 3);
    // Nothing changed: nothing published.
    b.plane.turn(at(2), wall());
    assert_eq!(rec.0.lock().unwrap().1.len(), 2);
}

#[test]
fn a_relay_plane_publishes_worker_figures_and_ignores_circuit_events() {
    let rec = Recorder::default();
    let mut b = bench(8, Box::new(rec.clone()), None);
    assert!(b.plane.is_ready());
    let stats = WorkerStats {
        worker: 1,
        relay: RelayStats {
            cells_in: 42,
            ..RelayStats::default()
        },
        sched: Default::default(),
        scheduler: kistrel_sched::SchedulerKind::Kist,
        events_dropped: 3,
        links: Default::default(),
        io: Default::default(),
    };
    b.events.send(WorkerEvent::Stats(Box::new(stats))).unwrap();
    b.events.send(need(1, 0)).unwrap();
    b.plane.turn(at(0), wall());
    assert!(commands(&b.commands[1]).is_empty());
    assert_eq!(b.plane.poll_timeout(), None);
    let (workers, control) = rec.0.lock().unwrap().clone();
    assert_eq!(workers.len(), 1);
    assert_eq!((workers[0].worker, workers[0].relay.cells_in), (1, 42));
    assert_eq!(workers[0].events_dropped, 3);
    assert_eq!(control[0].circuits, None);
}

#[test]
fn the_state_file_is_saved_every_minute_and_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state");
    let (state, saver) = StateSaver::load(&file, at(0));
    assert_eq!(state, State::default(), "no file: a fresh start");
    let p = paths().with_state_file(saver);
    let mut b = bench(8, Box::new(NoPublish), Some(p));
    assert_eq!(b.plane.poll_timeout(), Some(at(60_000)));
    b.events.send(need(0, 0)).unwrap();
    b.plane.turn(at(0), wall());
    let built = CircuitEvent::CircuitBuilt {
        circuit: CircuitKey { worker: 0, seq: 0 },
        build_time: Duration::from_millis(420),
    };
    b.events.send(event(built)).unwrap();
    b.plane.turn(at(59_999), wall());
    assert!(!file.exists());
    b.plane.turn(at(60_000), wall());
    let (saved, warning) = StateFile::load(&file);
    assert!(warning.is_none());
    assert_eq!(saved.cbt.unwrap().bins, vec![(425, 1)]);
    assert_eq!(b.plane.poll_timeout(), Some(at(120_000)));
    // One more build, then the end: saved again.
    b.events.send(need(0, 1)).unwrap();
    b.plane.turn(at(60_001), wall());
    let built = CircuitEvent::CircuitBuilt {
        circuit: CircuitKey { worker: 0, seq: 1 },
        build_time: Duration::from_millis(430),
    };
    b.events.send(event(built)).unwrap();
    let figures = b.plane.finish(at(60_500), wall());
    assert_eq!(figures.circuits.unwrap().circuits_built, 2);
    let (saved, _) = StateFile::load(&file);
    assert_eq!(saved.cbt.unwrap().bins, vec![(425, 1), (435, 1)]);
}
