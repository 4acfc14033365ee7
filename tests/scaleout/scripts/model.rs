//! The proptest of the backend's state machine: random reads, claims,
//! renewals, handbacks and completions, stale or not, by three consumers,
//! against a model of the stream.

use proptest::prelude::*;
use redis::Connection;

use super::*;

/// One step of the backend, as the proptest draws it.
#[derive(Debug, Clone)]
enum Step {
    Add,
    Read(usize),
    Claim(usize),
    Renew(usize),
    /// A consumer completes one of the deliveries it believes it holds
    /// (perhaps stale).
    Complete(usize, usize),
    Handback(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Add),
        2 => (0..3usize).prop_map(Step::Read),
        2 => (0..3usize).prop_map(Step::Claim),
        1 => (0..3usize).prop_map(Step::Renew),
        4 => (0..3usize, 0..4usize).prop_map(|(c, k)| Step::Complete(c, k)),
        1 => (0..3usize, 0..4usize).prop_map(|(c, k)| Step::Handback(c, k)),
    ]
}

/// What Redis should hold, per entry id.
#[derive(Debug, Default)]
struct Model {
    /// id → (rid, owner, deliveries), while pending; in id order.
    pending: BTreeMap<String, (String, usize, u32)>,
    /// Entries added and not yet read.
    new: Vec<(String, String)>,
    done: std::collections::BTreeSet<String>,
    /// What each consumer believes it holds: (id, rid, deliveries).
    held: [Vec<(String, String, u32)>; 3],
    next: u32,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

/// How often each answer came: OK, FENCED, DUP.
type Outcomes = [u64; 3];

fn apply(conn: &mut Connection, m: &mut Model, step: &Step, seen: &mut Outcomes) {
    match *step {
        Step::Add => {
            let rid = format!("r{}", m.next);
            m.next += 1;
            let id = add(conn, &rid);
            m.new.push((id, rid));
        }
        Step::Read(c) => {
            let got = read(conn, NAMES[c]);
            assert_eq!(got.as_ref(), m.new.first().map(|(id, _)| id));
            if let Some(id) = got {
                let (_, rid) = m.new.remove(0);
                m.pending.insert(id.clone(), (rid.clone(), c, 1));
                m.held[c].push((id, rid, 1));
            }
        }
        Step::Claim(c) => {
            let got = claim(conn, NAMES[c], 0);
            let expected = m.pending.iter_mut().next().map(|(id, e)| {
                (e.1, e.2) = (c, e.2 + 1);
                (id.clone(), e.2, e.0.clone())
            });
            assert_eq!(got, expected.as_ref().map(|(id, d, _)| (id.clone(), *d)));
            if let Some((id, d, rid)) = expected {
                m.held[c].push((id, rid, d));
            }
        }
        Step::Renew(c) => {
            let held: Vec<(String, u32)> = m.held[c].iter().map(|(id, _, d)| (id.clone(), *d)).collect();
            let lost = renew(conn, NAMES[c], &held);
            let expected: Vec<String> = held
                .iter()
                .filter(|(id, d)| m.pending.get(id).is_none_or(|e| (e.1, e.2) != (c, *d)))
                .map(|(id, _)| id.clone())
                .collect();
            assert_eq!(lost, expected);
        }
        Step::Complete(c, k) => complete_step(conn, m, c, k, seen),
        Step::Handback(c, k) => {
            let Some((id, _, d)) = m.held[c].get(k % m.held[c].len().max(1)).cloned() else {
                return;
            };
            let mine = m.pending.get(&id).is_some_and(|e| (e.1, e.2) == (c, d));
            assert_eq!(handback(conn, NAMES[c], &id, d), mine);
            if mine {
                let e = m.pending.get_mut(&id).expect("pending");
                e.2 = d.saturating_sub(1);
            }
        }
    }
}

fn complete_step(conn: &mut Connection, m: &mut Model, c: usize, k: usize, seen: &mut Outcomes) {
    let Some((id, rid, d)) = m.held[c].get(k % m.held[c].len().max(1)).cloned() else {
        return;
    };
    let mine = m.pending.get(&id).is_some_and(|e| (e.1, e.2) == (c, d));
    let expected = match (m.done.contains(&rid), mine) {
        (true, _) => "DUP",
        (false, true) => "OK",
        (false, false) => "FENCED",
    };
    let got = complete(conn, NAMES[c], &id, d, &rid);
    assert_eq!(got, expected, "{id} by {} with {d}", NAMES[c]);
    let slot = ["OK", "FENCED", "DUP"]
        .iter()
        .position(|s| *s == got)
        .expect("a known answer");
    seen[slot] += 1;
    if mine {
        m.pending.remove(&id);
    }
    if got == "OK" {
        m.done.insert(rid);
    }
}

/// One random sequence against a fresh stream: every script answers as
/// the model says; at the end, one reply per completed request and none
/// for the others, and Redis's pending count is the model's.
fn run_case(conn: &mut Connection, steps: &[Step], seen: &mut Outcomes) -> Result<(), TestCaseError> {
    fresh(conn);
    let mut m = Model::default();
    for s in steps {
        apply(conn, &mut m, s, seen);
    }
    let mut written = std::collections::BTreeSet::new();
    for rid in replies(conn) {
        prop_assert!(written.insert(rid.clone()), "two replies for {}", rid);
    }
    prop_assert_eq!(&written, &m.done);
    prop_assert_eq!(pending(conn), m.pending.len() as u64);
    Ok(())
}

#[test]
fn the_backend_never_writes_two_replies() {
    let redis = RedisServer::start();
    let conn = std::cell::RefCell::new(redis.connection());
    let seen = std::cell::RefCell::new([0u64; 3]);
    // Random cases (a fresh seed per run): batches of 96 until each answer
    // has been seen, so a run whose properties all held does not fail for
    // a rare answer's bad luck.
    let batches = 8;
    for _ in 0..batches {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 96,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&prop::collection::vec(step(), 1..40), |steps| {
                run_case(&mut conn.borrow_mut(), &steps, &mut seen.borrow_mut())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        if seen.borrow().iter().all(|&n| n > 0) {
            break;
        }
    }
    for (n, name) in seen.borrow().iter().zip(["OK", "FENCED", "DUP"]) {
        assert!(*n > 0, "{name} never happened in {} cases", 96 * batches);
    }
}
