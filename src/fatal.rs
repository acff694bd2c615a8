//! What a thread was doing when it died of SIGSEGV or SIGBUS, a stack
//! overflow among them, written to stderr (the broker's log) before the
//! process ends.
//!
//! Why: Rust's own handler says only "thread '...' has overflowed its
//! stack", and a broker that overflowed once in a CI fault run (never on
//! this machine) left nothing to find the recursion by. This handler runs
//! on an alternate stack of `ALT_STACK_BYTES` that each thread which calls
//! `on_this_thread` sets up (the shards do), large enough to unwind and
//! symbolize the frames; it prints the innermost frames last, so that the
//! few last lines a harness shows hold the repeating ones.
//!
//! Invariant: the process still dies of the signal it got. The handler puts
//! the default action back first (a fault inside it ends the process) and
//! arms an alarm (a handler stuck on a lock the faulting code held, such as
//! malloc's, ends by SIGALRM), then returns, and the faulting instruction
//! faults again under the default action.

use std::io::Write;

/// The alternate signal stack of each thread that asks for one: room to
/// unwind and symbolize a few thousand frames.
const ALT_STACK_BYTES: usize = 1 << 20;
/// Seconds the handler may take before SIGALRM ends the process.
const HANDLER_SECONDS_MAX: libc::c_uint = 10;
/// Frames printed from the backtrace's innermost end (the handler's own
/// first) and from its outermost end.
const INNER_FRAMES: usize = 48;
const OUTER_FRAMES: usize = 8;
/// Functions named on the one line of the most frequent frames.
const FREQUENT_SHOWN: usize = 6;
/// How far below a thread's lowest stack address a fault is still taken
/// for an overflow (the guard pages and a frame's probe past them).
const GUARD_SLACK_BYTES: usize = 1 << 20;

/// Installs the handler for SIGSEGV and SIGBUS, for every thread. Threads
/// that never call `on_this_thread` run it on the small alternate stack
/// Rust's runtime gives them, where a symbolized backtrace may not fit.
pub fn install() {
    for signal in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: a zeroed sigaction is valid; the handler has the
        // three-argument form SA_SIGINFO asks for.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                log::warn!(
                    "cannot install the fatal signal handler: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// Gives this thread an alternate signal stack of `ALT_STACK_BYTES`, kept
/// for the thread's life (one mapping per shard thread).
pub fn on_this_thread() {
    // SAFETY: a fresh mapping this thread keeps for good.
    let base = unsafe { crate::alloc::map(ALT_STACK_BYTES) };
    if base.is_null() {
        log::warn!(
            "no alternate signal stack: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let stack = libc::stack_t {
        ss_sp: base.cast(),
        ss_flags: 0,
        ss_size: ALT_STACK_BYTES,
    };
    // SAFETY: `stack` describes the live mapping made above, never unmapped.
    if unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) } != 0 {
        log::warn!(
            "no alternate signal stack: {}",
            std::io::Error::last_os_error()
        );
    }
}

extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: resetting a signal's action and arming an alarm are
    // async-signal-safe; `info` is the kernel's, valid in the handler.
    let address = unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::alarm(HANDLER_SECONDS_MAX);
        (*info).si_addr() as usize
    };
    let name = if signal == libc::SIGSEGV {
        "SIGSEGV"
    } else {
        "SIGBUS"
    };
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    let what = if stack_overflow(address) {
        "stack overflow"
    } else {
        "bad memory access"
    };
    // Said before the backtrace, which needs more stack than a thread
    // without `on_this_thread` has for its handler.
    let _ = writeln!(
        std::io::stderr(),
        "fatal: {name} in thread '{thread}' at {address:#x} ({what})"
    );
    let backtrace = std::backtrace::Backtrace::force_capture().to_string();
    let frames = frames(&backtrace);
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "{} frames", frames.len());
    if frames.len() > INNER_FRAMES + OUTER_FRAMES {
        let _ = writeln!(out, "outermost frames:");
        for frame in &frames[frames.len() - OUTER_FRAMES..] {
            let _ = out.write_all(frame.as_bytes());
        }
        let _ = writeln!(out, "innermost frames, the innermost last:");
    }
    for frame in frames.iter().take(INNER_FRAMES).rev() {
        let _ = out.write_all(frame.as_bytes());
    }
    let _ = writeln!(out, "most frequent frames: {}", most_frequent(&frames));
    let _ = writeln!(
        out,
        "fatal: {name} in thread '{thread}' ({what}): its innermost frames are above"
    );
    let _ = out.flush();
}

/// A printed backtrace cut into its frames (a numbered line, then the
/// lines of its inlined functions and their files), each ending in a
/// newline.
fn frames(backtrace: &str) -> Vec<String> {
    let mut frames: Vec<String> = Vec::new();
    for line in backtrace.lines() {
        let numbered = line
            .trim_start()
            .split_once(": ")
            .is_some_and(|(number, _)| number.bytes().all(|b| b.is_ascii_digit()));
        match frames.last_mut() {
            Some(frame) if !numbered => frame.push_str(line),
            _ => frames.push(line.to_string()),
        }
        if let Some(frame) = frames.last_mut() {
            frame.push('\n');
        }
    }
    frames
}

/// The functions of the frames most often in `frames`, with their counts:
/// in an overflow, the ones that recurse, on one line.
fn most_frequent(frames: &[String]) -> String {
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for frame in frames {
        let function = frame
            .lines()
            .next()
            .and_then(|line| line.trim_start().split_once(": "))
            .map_or("?", |(_, function)| function);
        *counts.entry(function).or_default() += 1;
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .iter()
        .take(FREQUENT_SHOWN)
        .map(|(function, count)| format!("{function} x{count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `address` is just below the current thread's stack: its guard.
fn stack_overflow(address: usize) -> bool {
    // SAFETY: a zeroed attribute object filled by pthread_getattr_np for
    // the current thread, read, then destroyed.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return false;
        }
        let mut low: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let found = libc::pthread_attr_getstack(&attr, &mut low, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        let low = low as usize;
        found
            && address < low.saturating_add(GUARD_SLACK_BYTES)
            && address + GUARD_SLACK_BYTES >= low
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    /// Set in the child process `a_stack_overflow_prints_its_frames` runs.
    const CHILD: &str = "SHOAL_FATAL_TEST_CHILD";

    #[inline(never)]
    #[allow(unconditional_recursion)] // the point: it ends by overflowing
    fn recurse(depth: u64, trail: &mut [u8; 512]) -> u64 {
        trail[(depth % 512) as usize] = depth as u8;
        let deeper = recurse(depth + 1, &mut std::hint::black_box(*trail));
        std::hint::black_box(deeper) + u64::from(trail[0])
    }

    /// In the child only: a thread with the handler's stack recursing
    /// until its stack runs out.
    #[test]
    fn child_overflows_its_stack() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        super::install();
        std::thread::Builder::new()
            .name("overflowing".into())
            .spawn(|| {
                super::on_this_thread();
                recurse(0, &mut [0; 512])
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// A real process overflows a thread's stack: it dies of SIGSEGV,
    /// having written the thread's name, the diagnosis and the recursing
    /// function's frames to stderr.
    #[test]
    fn a_stack_overflow_prints_its_frames() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fatal::tests::child_overflows_its_stack",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.signal(), Some(libc::SIGSEGV), "{stderr}");
        assert!(
            stderr.contains("fatal: SIGSEGV in thread 'overflowing'")
                && stderr.contains("(stack overflow)"),
            "{stderr}"
        );
        assert!(stderr.contains("outermost frames:"), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.contains("its innermost frames are above"), "{stderr}");
        let frequent = stderr.lines().rev().nth(1).unwrap_or_default();
        assert!(
            frequent.starts_with("most frequent frames: shoal::fatal::tests::recurse x"),
            "{stderr}"
        );
        assert!(
            stderr.matches("fatal::tests::recurse").count() > 10,
            "{stderr}"
        );
    }
}
