//! Whether a reader process has caught up with its inputs: nothing waits in them, and
//! the reader sleeps. A log relay reads a chunk, writes it to the log, then sleeps in
//! `poll` for more; so while its pipes are empty and it sleeps, everything the services
//! wrote before is in their logs.

use std::os::fd::BorrowedFd;

use super::process::{has_ended, stat_of};

/// True when none of `inputs` holds unread bytes and `reader` sleeps (or has ended):
/// it is not between a read and its write. An input whose fill cannot be read counts
/// as empty, so that a failing check never holds anyone up.
pub fn caught_up(reader: i32, inputs: &[BorrowedFd<'_>]) -> bool {
    let empty = inputs.iter().all(|fd| rustix::io::ioctl_fionread(fd).unwrap_or(0) == 0);
    // Read after the inputs: a reader seen asleep then has taken what they held and
    // is waiting for more (its only sleep is `poll`; writes to a file do not sleep
    // interruptibly).
    empty && stat_of(reader).is_none_or(|stat| stat.state == 'S' || has_ended(stat.pid, stat.state))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn unread_bytes_in_a_pipe_mean_not_caught_up() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        // A thread of ours that sleeps on a channel stands for the reader: /proc
        // answers for a thread's ID as for a process's.
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
            let _ = end_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        let asleep = crate::poll::wait_until(
            crate::poll::after(std::time::Duration::from_secs(5)),
            crate::poll::Backoff::fast(),
            || caught_up(tid, &[reader.as_fd()]).then_some(()),
        );
        writer.write_all(b"a line\n").unwrap();
        let with_a_line = caught_up(tid, &[reader.as_fd()]);
        let running = caught_up(nix::unistd::gettid().as_raw(), &[]);
        end_tx.send(()).unwrap();
        sleeper.join().unwrap();
        assert!(asleep.is_some(), "an empty pipe and a sleeping reader are caught up");
        assert!(!with_a_line, "a line waits in the pipe");
        assert!(!running, "a reader that runs may hold what it read");
    }
}
