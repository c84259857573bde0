//! The terminal the UI draws on: raw mode and the alternate screen while it runs, the
//! mouse taken or left to the terminal's own selection, keys read with a timeout, and
//! the terminal restored however the UI ends (its guard dropped, a panic).

use std::io::{self, Stdout, Write};
use std::sync::Once;
use std::time::Duration;

use base64::Engine;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyCode, KeyEventKind, KeyModifiers, MouseEventKind,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};

use super::{Drawn, Screen, widgets};

/// What the user did, in the UI's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Up,
    Down,
    Enter,
    Tab,
    PageUp,
    PageDown,
    Home,
    End,
    Esc,
    Backspace,
    Char(char),
    /// Ctrl+C, which raw mode delivers as a key.
    Interrupt,
    WheelUp,
    WheelDown,
    /// The terminal changed size: draw again.
    Resize,
}

/// The UI's terminal; dropping it gives the terminal back as it was.
pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    mouse: bool,
    /// The terminal, for noticing that it hung up (see `next_input`).
    tty: std::fs::File,
}

impl Tui {
    /// Takes over the terminal: raw mode, the alternate screen, the mouse. Refused when
    /// stdout is not a terminal.
    pub fn enter() -> io::Result<Tui> {
        use std::io::IsTerminal;
        if !io::stdout().is_terminal() {
            return Err(io::Error::other("stdout is not a terminal"));
        }
        let tty = std::fs::File::open("/dev/tty")?;
        restore_on_panic();
        enable_raw_mode()?;
        reads_wait_for_a_byte(&tty);
        let entered = execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(mut terminal) => {
                terminal.hide_cursor()?;
                Ok(Tui {
                    terminal,
                    mouse: true,
                    tty,
                })
            }
            Err(err) => {
                restore();
                Err(err)
            }
        }
    }

    pub fn draw(&mut self, screen: &Screen) -> io::Result<Drawn> {
        let mut drawn = Drawn::default();
        self.terminal.draw(|frame| drawn = widgets::draw(frame, screen))?;
        Ok(drawn)
    }

    /// The next input, waiting at most `timeout`; `None` when none came. An error once
    /// the terminal has hung up (its window closed, tmux killed).
    ///
    /// The wait is a poll(2) of our own on the terminal: crossterm's reader loops for
    /// good on the end of input a hung-up terminal gives (it reads 0 bytes, again and
    /// again), so it is asked only once the terminal is known to be there. A resize
    /// (crossterm learns of it by SIGWINCH) is seen at the next wake.
    pub fn next_input(&self, timeout: Duration) -> io::Result<Option<Input>> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&self.tty), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Err(err.into()),
        }
        let hung_up = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
        if fds
            .first()
            .and_then(PollFd::revents)
            .is_some_and(|r| r.intersects(hung_up))
        {
            return Err(io::Error::other("the terminal hung up"));
        }
        if !event::poll(Duration::ZERO)? {
            return Ok(None);
        }
        Ok(match event::read()? {
            Event::Key(key) if key.kind != KeyEventKind::Release => match key.code {
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Some(Input::Interrupt),
                KeyCode::Char(c) => Some(Input::Char(c)),
                KeyCode::Up => Some(Input::Up),
                KeyCode::Down => Some(Input::Down),
                KeyCode::Enter => Some(Input::Enter),
                KeyCode::Tab => Some(Input::Tab),
                KeyCode::PageUp => Some(Input::PageUp),
                KeyCode::PageDown => Some(Input::PageDown),
                KeyCode::Home => Some(Input::Home),
                KeyCode::End => Some(Input::End),
                KeyCode::Esc => Some(Input::Esc),
                KeyCode::Backspace => Some(Input::Backspace),
                _ => None,
            },
            Event::Mouse(mouse) => match mouse.kind {
                MouseEventKind::ScrollUp => Some(Input::WheelUp),
                MouseEventKind::ScrollDown => Some(Input::WheelDown),
                _ => None,
            },
            Event::Resize(..) => Some(Input::Resize),
            _ => None,
        })
    }

    /// Takes the mouse (the wheel scrolls the log) or leaves it to the terminal (its
    /// own selection and copying work).
    pub fn set_mouse(&mut self, on: bool) -> io::Result<()> {
        if on {
            execute!(io::stdout(), EnableMouseCapture)?;
        } else {
            execute!(io::stdout(), DisableMouseCapture)?;
        }
        self.mouse = on;
        Ok(())
    }

    pub fn mouse(&self) -> bool {
        self.mouse
    }

    /// Puts `text` on the clipboard through the terminal (OSC 52), which works over SSH
    /// and in tmux with `set-clipboard on`.
    pub fn copy(&mut self, text: &str) -> io::Result<()> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        let mut out = io::stdout().lock();
        write!(out, "\u{1b}]52;c;{encoded}\u{7}")?;
        out.flush()
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// A read of the terminal returns once a byte is there (VMIN 1, VTIME 0). Raw mode
/// leaves these as it found them; with VMIN 0 a read returns nothing at once, which
/// crossterm's reader would take for more to come and read again without end.
fn reads_wait_for_a_byte(tty: &std::fs::File) {
    use nix::sys::termios::{SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr};
    let Ok(mut attrs) = tcgetattr(tty) else { return };
    for (index, value) in [(SpecialCharacterIndices::VMIN, 1), (SpecialCharacterIndices::VTIME, 0)] {
        if let Some(slot) = attrs.control_chars.get_mut(index as usize) {
            *slot = value;
        }
    }
    let _ = tcsetattr(tty, SetArg::TCSANOW, &attrs);
}

/// The terminal as it was: mouse released, main screen, cooked mode, cursor shown.
/// Every step is tried even when an earlier one fails.
fn restore() {
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}

/// A panic restores the terminal before its message is printed, or the message would
/// land on the alternate screen and the shell would be left in raw mode.
fn restore_on_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
