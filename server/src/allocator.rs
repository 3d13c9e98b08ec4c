//! The global allocator: mimalloc for `leadline ingest`, the system allocator
//! (glibc) for everything else.
//!
//! Ingest allocates and frees many small strings across threads (a reader,
//! the appender, the Parquet encoder); glibc's malloc spent ~40% of its CPU on
//! that (perf) and mimalloc halves ingest time at the same peak RSS. But
//! DataFusion scans keep more memory resident under mimalloc: a bare
//! `GROUP BY` over 10M events peaked at ~570 MB against glibc's ~245 MB
//! (~1.1 GB with mimalloc's default eager arena commit, which is therefore
//! turned off). So queries, `serve` and the rest stay on glibc.
//!
//! The choice is made once, by a constructor that runs before `main` and
//! before anything is allocated (see [`choose`]), and never changes: every
//! block is freed by the allocator that allocated it.
//! `LEADLINE_ALLOCATOR=mimalloc|system` overrides it (for measurements).
//!
//! While ingest appends to the log, mimalloc returns freed pages to the OS
//! after 100 ms instead of its default second ([`SoonerPurge`]). The open
//! event files' page buffers are allocated and freed all the time there,
//! and mimalloc's cache of freed pages was most of the excess over the live
//! heap: appending 10M events, the heap peaked at 560 MB (heaptrack) and the
//! process at 739–1,075 MB (627 MB under glibc); with 100 ms at 662–668 MB.
//! At 50M that was the difference between a 2.13 GiB peak and ~1.3 GB. The
//! read model's fold keeps the default: it peaks lower, takes most of the
//! time, and purging sooner costs system time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{CStr, c_char, c_int, c_long};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use mimalloc::MiMalloc;

static USE_MIMALLOC: AtomicBool = AtomicBool::new(false);

pub struct Allocator;

// SAFETY: forwards to one of two allocators; `USE_MIMALLOC` is set before
// the first allocation and never changed after, so a block is always
// resized and freed by the allocator that made it.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { if USE_MIMALLOC.load(Relaxed) { MiMalloc.alloc(layout) } else { System.alloc(layout) } }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { if USE_MIMALLOC.load(Relaxed) { MiMalloc.alloc_zeroed(layout) } else { System.alloc_zeroed(layout) } }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { if USE_MIMALLOC.load(Relaxed) { MiMalloc.dealloc(ptr, layout) } else { System.dealloc(ptr, layout) } }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            if USE_MIMALLOC.load(Relaxed) {
                MiMalloc.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

unsafe extern "C" {
    // From the mimalloc C library that libmimalloc-sys builds and links (its
    // typed binding needs the `extended` feature and one more crate).
    fn mi_version() -> c_int;
    fn mi_option_set_default(option: c_int, value: c_long);
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
    // libc: reads the environment without allocating.
    fn getenv(name: *const c_char) -> *const c_char;
}

/// Whether the linked mimalloc is 3.x, whose option numbers these are.
fn is_mimalloc3() -> bool {
    // SAFETY: reads a constant; allocates nothing (called before `main` too).
    (30_000..40_000).contains(&unsafe { mi_version() })
}

/// mimalloc 3.x's `mi_option_purge_delay` (mimalloc.h `mi_option_e`).
const PURGE_DELAY: c_int = 15;
/// Its value (ms) while the log is appended.
const LOG_APPEND_PURGE_DELAY_MS: c_long = 100;

/// While alive (and mimalloc 3 is the allocator, and `MIMALLOC_PURGE_DELAY`
/// does not set the delay), freed pages go back to the OS after
/// [`LOG_APPEND_PURGE_DELAY_MS`]; the delay before is restored when it is
/// dropped.
pub struct SoonerPurge(Option<c_long>);

impl SoonerPurge {
    pub fn start() -> SoonerPurge {
        // SAFETY: getenv returns null or a valid C string; the mimalloc
        // calls read and store one option (thread-safe in mimalloc).
        unsafe {
            if !USE_MIMALLOC.load(Relaxed) || !is_mimalloc3() || !getenv(c"MIMALLOC_PURGE_DELAY".as_ptr()).is_null() {
                return SoonerPurge(None);
            }
            let before = mi_option_get(PURGE_DELAY);
            mi_option_set(PURGE_DELAY, LOG_APPEND_PURGE_DELAY_MS);
            SoonerPurge(Some(before))
        }
    }
}

impl Drop for SoonerPurge {
    fn drop(&mut self) {
        if let Some(before) = self.0.take() {
            // SAFETY: as in `start`.
            unsafe { mi_option_set(PURGE_DELAY, before) }
        }
    }
}

/// glibc calls `.init_array` functions with `(argc, argv, envp)`; priority
/// 101 runs before unprioritized constructors (mimalloc's own, which reads
/// its options) and before the Rust runtime allocates anything.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00101")]
static CHOOSE: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = choose;

extern "C" fn choose(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    // SAFETY: argv holds argc valid C strings (the loader's); getenv returns
    // null or a valid C string; the mimalloc calls only read a constant and
    // store an option's default in its static table. Nothing here allocates.
    unsafe {
        let forced = getenv(c"LEADLINE_ALLOCATOR".as_ptr());
        let mimalloc = if !forced.is_null() {
            CStr::from_ptr(forced).to_bytes() == b"mimalloc"
        } else {
            argc >= 2
                && !argv.is_null()
                && !(*argv.add(1)).is_null()
                && CStr::from_ptr(*argv.add(1)).to_bytes() == b"ingest"
        };
        if !mimalloc {
            return;
        }
        // mimalloc 3 commits its 1 GiB arenas eagerly by default, which held
        // ~4x glibc's memory in a scan; lazy commit costs ingest nothing
        // measurable. A default only: MIMALLOC_ARENA_EAGER_COMMIT still wins.
        // The option's number in mimalloc 3.x's `mi_option_e` (mimalloc.h):
        const ARENA_EAGER_COMMIT: c_int = 4;
        if is_mimalloc3() {
            mi_option_set_default(ARENA_EAGER_COMMIT, 0);
        }
        USE_MIMALLOC.store(true, Relaxed);
    }
}
