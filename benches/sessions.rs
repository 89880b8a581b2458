//! Memory per peer session: the heap one
//! [`Session`] holds for a peer with 0, 10, 100 and 10^4 shared edges, at rest (the state a
//! server keeps for every peer it federates with, between changes).
//!
//! A counting global allocator (a [`GlobalAlloc`] around [`System`] keeping the live bytes)
//! measures each session right after it is built from its edges and its published set (the
//! local publishers with a subscriber among the edges, one available resource each), and
//! the cache of the peer's published set of the same size, built apart as a [`PresenceSet`]
//! (a session fills it by pulling). Exact counts on the machine's allocator, no timing.
//!
//! Run with `cargo bench --bench sessions`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use presence_sync::conformance::hostile::probe::{DRIVER, PEER, available, edges, user};
use presence_sync::digest::hash::{HashAlgo, PairHasher};
use presence_sync::engine::{Config, PresenceSet, Session};
use presence_sync::model::Epoch;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The heap `f`'s result holds while it lives (plus the inline size of the value).
fn held<T>(f: impl FnOnce() -> T) -> usize {
    let before = LIVE.load(Ordering::Relaxed);
    let value = f();
    let bytes = LIVE.load(Ordering::Relaxed) - before + std::mem::size_of::<T>();
    drop(value);
    bytes
}

fn main() {
    println!("memory per peer session at rest (bytes, counted by the allocator)");
    println!(
        "{:>12} {:>11} {:>14} {:>14} {:>14}",
        "shared edges", "publishers", "session", "peer's cache", "per edge"
    );
    for n in [0usize, 10, 100, 10_000] {
        let publishers = n.div_ceil(2);
        let published = || (0..publishers).map(|i| (user(i, DRIVER), available()));
        let session = held(|| {
            Session::new(
                DRIVER,
                PEER,
                Epoch(1),
                Config::default(),
                edges(DRIVER, n),
                published(),
            )
        });
        let cache = held(|| {
            let hasher = PairHasher::new(HashAlgo::Blake3, DRIVER, PEER);
            let mut set = PresenceSet::new(hasher, 0);
            for i in 0..publishers {
                set.set(&user(i, PEER), available());
            }
            set
        });
        let per_edge = (session + cache)
            .checked_div(n)
            .map_or("-".to_owned(), |b| b.to_string());
        println!("{n:>12} {publishers:>11} {session:>14} {cache:>14} {per_edge:>14}");
    }
}
