//! The largest single allocation made while a closure runs.
//!
//! A WAV header can declare sizes up to 4 GiB; the service must skip such
//! chunks, never allocate them. libFuzzer's own `-malloc_limit_mb` needs a
//! sanitizer's malloc hooks, which the stable fallback (`--sanitizer none`)
//! does not have, so the checks watch allocations themselves.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, noting the size of each allocation while watched.
pub struct Watch;

thread_local! {
    // Per thread, so tests running side by side do not see each other's
    // allocations. Const-initialised cells without destructors: reading them
    // never allocates.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: during thread teardown the cells may be gone; nothing is
    // watched then.
    if WATCHING.try_with(Cell::get).unwrap_or(false) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }
}

// SAFETY: every call is passed unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the bookkeeping only reads sizes and touches
// thread-local cells (it allocates nothing itself, so it cannot recurse).
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's obligations for `alloc` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

/// Runs `f` and returns its result with the largest single allocation (or
/// reallocation) it made on this thread, in bytes. Not reentrant.
pub fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.set(0);
    WATCHING.set(true);
    let result = f();
    WATCHING.set(false);
    (result, LARGEST.get())
}
