//! Progress inside a scenario, for a terminal: which phase a world is in (building its
//! servers, a login storm, a measured phase, a baseline) and how far it got (events run,
//! stanzas delivered, simulated time).
//!
//! The worlds of a scenario report [`Tick`]s to the ticker installed on the current thread
//! with [`set_ticker`]; with none installed (the default, and in tests) a tick costs one
//! thread-local read. The command line installs an `indicatif` spinner when stderr is a
//! terminal.

use std::cell::RefCell;
use std::sync::Arc;

/// Where a world is and how far it got.
#[derive(Clone, Copy, Debug)]
pub struct Tick<'a> {
    /// What the world is doing, in a few words.
    pub phase: &'a str,
    /// Events (deliveries, timers, actions) run in this phase so far.
    pub events: u64,
    /// Stanzas delivered in this phase so far.
    pub stanzas: u64,
    /// Simulated time of the world, in ms.
    pub sim_ms: u64,
}

/// Receives the [`Tick`]s of the worlds run on this thread.
pub type Ticker = Arc<dyn Fn(&Tick<'_>) + Send + Sync>;

/// How many events a world runs between two ticks.
pub const EVERY: u64 = 4096;

thread_local! {
    static TICKER: RefCell<Option<Ticker>> = const { RefCell::new(None) };
}

/// Installs `ticker` for the worlds run on this thread from now on (`None` removes it).
pub fn set_ticker(ticker: Option<Ticker>) {
    TICKER.with(|t| *t.borrow_mut() = ticker);
}

/// Reports `tick` to the installed ticker, if any.
pub fn tick(tick: Tick<'_>) {
    let ticker = TICKER.with(|t| t.borrow().clone());
    if let Some(f) = ticker {
        f(&tick);
    }
}

/// True if a ticker is installed (so that counts are computed only when someone looks).
pub fn active() -> bool {
    TICKER.with(|t| t.borrow().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn ticks_reach_the_installed_ticker_only() {
        tick(Tick {
            phase: "nobody listens",
            events: 1,
            stanzas: 0,
            sim_ms: 0,
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        set_ticker(Some(Arc::new(move |t: &Tick<'_>| {
            sink.lock()
                .expect("not poisoned")
                .push((t.phase.to_owned(), t.events));
        })));
        assert!(active());
        tick(Tick {
            phase: "measuring",
            events: 4096,
            stanzas: 10,
            sim_ms: 20,
        });
        set_ticker(None);
        assert!(!active());
        tick(Tick {
            phase: "after",
            events: 2,
            stanzas: 0,
            sim_ms: 0,
        });
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            vec![("measuring".to_owned(), 4096)]
        );
    }
}
