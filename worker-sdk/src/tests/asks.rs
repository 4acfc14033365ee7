//! Questions to the supervisor: each answer reaches the call that asked by
//! its id, errors come back typed, a call times out on its own, and the
//! hello declares `exit`.

use std::time::Duration;

use serde_bytes::ByteBuf;

use super::*;
use crate::AskError;

/// The next question the worker asks.
async fn next_question(fake: &mut Fake) -> (u64, Question) {
    match fake.next().await {
        FromWorker::Ask { id, question } => (id, question),
        other => panic!("expected a question, got {other:?}"),
    }
}

fn ok<T: serde::Serialize>(value: &T) -> Outcome {
    Outcome::Ok(ByteBuf::from(encode_payload(value).expect("encodes")))
}

#[tokio::test]
async fn answers_reach_their_own_questions_in_any_order() {
    let (worker, mut fake) = start().await;
    let (w1, w2) = (worker.clone(), worker.clone());
    let first = tokio::spawn(async move { w1.ask::<_, String>("greet", &"ann").await });
    let (id1, q1) = next_question(&mut fake).await;
    let second = tokio::spawn(async move { w2.ask::<_, u32>("count", &()).await });
    let (id2, _) = next_question(&mut fake).await;
    assert_ne!(id1, id2);
    let Question::Event { event, payload } = q1 else {
        panic!("an event question")
    };
    assert_eq!(event, "greet");
    assert_eq!(decode_payload::<String>(&payload).unwrap(), "ann");
    fake.send(ToWorker::Answer {
        id: id2,
        outcome: ok(&7u32),
    })
    .await;
    fake.send(ToWorker::Answer {
        id: id1,
        outcome: ok(&"hello"),
    })
    .await;
    assert_eq!(second.await.unwrap(), Ok(7));
    assert_eq!(first.await.unwrap().as_deref(), Ok("hello"));
}

#[tokio::test]
async fn error_answers_are_typed_and_a_silent_supervisor_times_out() {
    let (worker, mut fake) = start().await;
    let w = worker.clone();
    let kill = tokio::spawn(async move { w.kill(Target::Pid(1), 0).await });
    let (id, question) = next_question(&mut fake).await;
    assert_eq!(
        question,
        Question::Kill {
            target: Target::Pid(1),
            code: 0
        }
    );
    let refused = RemoteError::new(ask_kind::NOT_A_MEMBER, "Pid(1)");
    fake.send(ToWorker::Answer {
        id,
        outcome: Outcome::Err(refused),
    })
    .await;
    assert_eq!(kill.await.unwrap(), Err(AskError::NotAMember("Pid(1)".into())));

    let timeout = Duration::from_millis(50);
    let late = worker.ask_within::<_, ()>("slow", &(), timeout).await;
    assert_eq!(late, Err(AskError::Timeout(timeout)));
    // Its answer, arriving after the timeout, is dropped; the link is fine.
    let (id, _) = next_question(&mut fake).await;
    fake.send(ToWorker::Answer { id, outcome: ok(&()) }).await;
    let w = worker.clone();
    let restart = tokio::spawn(async move { w.restart_me().await });
    let (id, question) = next_question(&mut fake).await;
    assert_eq!(question, Question::RestartMe);
    fake.send(ToWorker::Answer { id, outcome: ok(&()) }).await;
    assert_eq!(restart.await.unwrap(), Ok(()));
}

#[tokio::test]
async fn a_closed_link_ends_the_questions_waiting() {
    let (worker, mut fake) = start().await;
    let w = worker.clone();
    let asked = tokio::spawn(async move { w.ask::<_, ()>("never", &()).await });
    let _ = next_question(&mut fake).await;
    drop(fake);
    assert_eq!(asked.await.unwrap(), Err(AskError::Disconnected));
}
