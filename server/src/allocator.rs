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
    // libc: reads the environment without allocating.
    fn getenv(name: *const c_char) -> *const c_char;
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
        if (30_000..40_000).contains(&mi_version()) {
            mi_option_set_default(ARENA_EAGER_COMMIT, 0);
        }
        USE_MIMALLOC.store(true, Relaxed);
    }
}
