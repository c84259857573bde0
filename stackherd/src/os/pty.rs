//! A pseudo-terminal for a service with `tty = true`: its stdout and stderr are the
//! terminal's slave side, so that it line-buffers, colours and answers `isatty` as in
//! a shell; its relay reads the master side into the log.

use std::fs::File;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::stat::Mode;
use nix::sys::termios::{OutputFlags, SetArg, tcgetattr, tcsetattr};

/// The size the terminal reports: what programs lay their progress bars out for.
const COLUMNS: u16 = 120;
const ROWS: u16 = 40;

/// Both sides of a new terminal, close-on-exec.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: File,
}

/// Opens a terminal whose output is passed on as written: `\n` stays `\n` (no
/// `\r\n`), so the log reads as the program's own output does.
pub fn open() -> Result<Pty, Errno> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut termios = tcgetattr(&slave)?;
    termios.output_flags.remove(OutputFlags::OPOST);
    tcsetattr(&slave, SetArg::TCSANOW, &termios)?;
    let size = nix::libc::winsize {
        ws_row: ROWS,
        ws_col: COLUMNS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let master = OwnedFd::from(master);
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which outlives the call.
    let set = unsafe { nix::libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&master), nix::libc::TIOCSWINSZ, &size) };
    if set == -1 {
        return Err(Errno::last());
    }
    Ok(Pty {
        master,
        slave: File::from(slave),
    })
}
