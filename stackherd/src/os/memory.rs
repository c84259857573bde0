//! The supervisor's own memory. A supervisor lives all day and mostly sleeps; glibc
//! gives each thread that allocates an arena of its own (the start's spawning workers,
//! the probe pool, the watch), about 140 KB each that stay resident for good.

/// Makes every thread allocate from one arena. Called first thing, before any thread
/// starts: the supervisor's few threads rarely allocate at the same moment, so the
/// shared arena's lock costs nothing that shows.
pub fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a tunable of glibc's allocator; M_ARENA_MAX takes any
    // positive count, and a refusal (a zero return) leaves the default in place.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}
