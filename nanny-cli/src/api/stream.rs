//! `GET /v1/events`: the library's [`nanny::Event`]s as server-sent
//! events, `event: <kind>` and `data: <the event's JSON>`.
//!
//! Each client has its own subscription to the supervisor's broadcast,
//! bounded by its `event_capacity`: a client that reads too slowly gets
//! `event: lagged` with the count it missed, never a growing buffer. The
//! stream ends when the supervisor closes.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as Frame, KeepAlive, Sse};
use futures::{Stream, StreamExt};

use super::routes::Route;
use super::AppState;

/// This part's rows of the registry.
pub(crate) fn routes() -> Vec<Route> {
    vec![Route::get("/v1/events", events)]
}

/// `GET /v1/events`.
async fn events(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Frame, Infallible>>> {
    let supervisor = state.supervisor.clone();
    let closed = async move { supervisor.closed().await };
    let frames = (state.supervisor.events())
        .map(|event| Ok(frame(&event)))
        .take_until(closed);
    Sse::new(frames).keep_alive(KeepAlive::default())
}

/// One event's frame.
fn frame(event: &nanny::Event) -> Frame {
    let (kind, data) = kind_and_data(event);
    Frame::default().event(kind).data(data)
}

/// An event's SSE name (its `kind`) and data (its JSON).
fn kind_and_data(event: &nanny::Event) -> (String, String) {
    match serde_json::to_value(event) {
        Ok(value) => {
            let kind = value["kind"].as_str().unwrap_or("event").to_owned();
            (kind, value.to_string())
        }
        Err(e) => ("error".to_owned(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lagging_client_gets_lagged_with_the_count() {
        let (kind, data) = kind_and_data(&nanny::Event::Lagged(12));
        assert_eq!(kind, "lagged");
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(data, serde_json::json!({"kind": "lagged", "data": 12}));
        assert_eq!(kind_and_data(&nanny::Event::AllOnline).0, "all-online");
    }
}
