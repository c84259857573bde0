//! The UI's state and what each key does to it: selection, which log is shown, where it
//! is scrolled to, the search. Pure: what must touch the world (an action, a copy, the
//! mouse, a new log to read) is returned as an `Effect` for the loop to carry out.

use std::collections::VecDeque;

use super::actions::Action;
use crate::ui::tui::{Input, LogLine, plain};

/// Lines a turn of the mouse wheel scrolls.
const WHEEL_LINES: usize = 3;

/// What the loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Nothing,
    Quit,
    /// The log pane shows other logs now: read them.
    Reload,
    Act(Action),
    Copy(String),
    Mouse(bool),
}

#[derive(Debug, Default)]
pub struct App {
    /// The services, in the table's order.
    pub names: Vec<String>,
    pub selected: usize,
    /// The log pane shows every service's log, not the selected one's.
    pub all: bool,
    /// One past the last line shown; `None` follows the end.
    pub bottom: Option<usize>,
    /// The marked line: a search match, what `c` copies.
    pub cursor: Option<usize>,
    /// A search being typed.
    pub typing: Option<String>,
    pub query: Option<String>,
    pub mouse: bool,
    /// The log pane's height at the last draw: a page.
    pub page: usize,
    /// A word for the user about the last key ("no line matches …", "copied").
    pub said: Option<String>,
}

impl App {
    pub fn new(names: Vec<String>) -> App {
        App {
            names,
            mouse: true,
            page: 10,
            ..App::default()
        }
    }

    pub fn selected_name(&self) -> Option<&str> {
        self.names.get(self.selected).map(String::as_str)
    }

    /// What `input` does, given the log pane's `lines`.
    pub fn on_input(&mut self, input: Input, lines: &VecDeque<LogLine>) -> Effect {
        if self.typing.is_some() {
            self.on_typing(input, lines);
            return Effect::Nothing;
        }
        self.said = None;
        let name = self.selected_name().map(str::to_string);
        match input {
            Input::Char('q') | Input::Interrupt => Effect::Quit,
            Input::Up | Input::Char('k') => self.select(self.selected.saturating_sub(1)),
            Input::Down | Input::Char('j') => self.select(self.selected.saturating_add(1)),
            Input::Enter | Input::Tab => {
                self.all = !self.all;
                Effect::Reload
            }
            Input::Char('r') => name.map_or(Effect::Nothing, |n| Effect::Act(Action::Restart(n))),
            Input::Char('s') => name.map_or(Effect::Nothing, |n| Effect::Act(Action::Stop(n))),
            Input::Char('S') => name.map_or(Effect::Nothing, |n| Effect::Act(Action::Start(n))),
            Input::Char('A') => Effect::Act(Action::StartAll),
            Input::Char('/') => {
                self.typing = Some(String::new());
                Effect::Nothing
            }
            Input::Char('n') => {
                let from = self.cursor.unwrap_or_else(|| self.bottom_in(lines));
                self.find(lines, from);
                Effect::Nothing
            }
            Input::PageUp => self.scroll_up(self.page.max(1), lines),
            Input::PageDown => self.scroll_down(self.page.max(1), lines),
            Input::WheelUp => self.scroll_up(WHEEL_LINES, lines),
            Input::WheelDown => self.scroll_down(WHEEL_LINES, lines),
            Input::Home | Input::Char('g') => {
                self.bottom = Some(self.page.min(lines.len()));
                Effect::Nothing
            }
            Input::End | Input::Char('f' | 'G') => {
                self.follow();
                Effect::Nothing
            }
            Input::Char('c') => self.copy(lines),
            Input::Char('m') => Effect::Mouse(!self.mouse),
            Input::Esc => {
                self.query = None;
                self.cursor = None;
                Effect::Nothing
            }
            _ => Effect::Nothing,
        }
    }

    /// The log pane shows new logs: from their end, following.
    pub fn follow(&mut self) {
        self.bottom = None;
        self.cursor = None;
    }

    /// `dropped` lines left the front of the pane's buffer: indexes move with them.
    pub fn shift(&mut self, dropped: usize) {
        if dropped == 0 {
            return;
        }
        self.bottom = self.bottom.map(|b| b.saturating_sub(dropped));
        self.cursor = self.cursor.and_then(|c| c.checked_sub(dropped));
    }

    fn on_typing(&mut self, input: Input, lines: &VecDeque<LogLine>) {
        let Some(typed) = self.typing.as_mut() else {
            return;
        };
        match input {
            Input::Char(c) => typed.push(c),
            Input::Backspace => {
                typed.pop();
            }
            Input::Enter => {
                let query = std::mem::take(typed);
                self.typing = None;
                if !query.is_empty() {
                    self.query = Some(query);
                    let from = self.bottom_in(lines);
                    self.find(lines, from);
                }
            }
            Input::Esc | Input::Interrupt => self.typing = None,
            _ => {}
        }
    }

    fn select(&mut self, index: usize) -> Effect {
        let index = index.min(self.names.len().saturating_sub(1));
        if index == self.selected {
            return Effect::Nothing;
        }
        self.selected = index;
        if self.all { Effect::Nothing } else { Effect::Reload }
    }

    fn bottom_in(&self, lines: &VecDeque<LogLine>) -> usize {
        self.bottom.unwrap_or(lines.len()).min(lines.len())
    }

    /// Marks the nearest line above `from` that matches the search, wrapping around
    /// from the end, and scrolls it into view.
    fn find(&mut self, lines: &VecDeque<LogLine>, from: usize) {
        let Some(query) = self.query.as_ref().map(|q| q.to_lowercase()) else {
            return;
        };
        let matches = |i: &usize| {
            lines
                .get(*i)
                .is_some_and(|l| plain(&l.text).to_lowercase().contains(&query))
        };
        let above = (0..from.min(lines.len())).rev().find(matches);
        let found = above.or_else(|| (from.min(lines.len())..lines.len()).rev().find(matches));
        match found {
            Some(index) => {
                self.cursor = Some(index);
                // The match in the middle of the pane, unless that is past the end.
                let bottom = index.saturating_add(1).saturating_add(self.page / 2);
                self.bottom = (bottom < lines.len()).then_some(bottom.max(self.page.min(lines.len())));
            }
            None => self.said = Some(format!("no line matches `{query}`")),
        }
    }

    fn scroll_up(&mut self, by: usize, lines: &VecDeque<LogLine>) -> Effect {
        let floor = self.page.min(lines.len());
        self.bottom = Some(self.bottom_in(lines).saturating_sub(by).max(floor));
        Effect::Nothing
    }

    fn scroll_down(&mut self, by: usize, lines: &VecDeque<LogLine>) -> Effect {
        let bottom = self.bottom_in(lines).saturating_add(by);
        self.bottom = (bottom < lines.len()).then_some(bottom);
        Effect::Nothing
    }

    /// The marked line, or the last one shown, as plain text.
    fn copy(&mut self, lines: &VecDeque<LogLine>) -> Effect {
        let index = self.cursor.unwrap_or_else(|| self.bottom_in(lines).saturating_sub(1));
        match lines.get(index) {
            Some(line) => {
                self.said = Some("copied the marked line (OSC 52)".into());
                Effect::Copy(plain(&line.text))
            }
            None => Effect::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> VecDeque<LogLine> {
        texts
            .iter()
            .map(|t| LogLine {
                service: 0,
                text: (*t).to_string(),
            })
            .collect()
    }

    fn app() -> App {
        let mut app = App::new(vec!["api".into(), "db".into()]);
        app.page = 2;
        app
    }

    #[test]
    fn keys_select_switch_and_act_on_the_selected_service() {
        let mut app = app();
        let none = lines(&[]);
        let rows: [(Input, Effect); 8] = [
            (Input::Down, Effect::Reload),
            (Input::Char('j'), Effect::Nothing),
            (Input::Char('r'), Effect::Act(Action::Restart("db".into()))),
            (Input::Char('S'), Effect::Act(Action::Start("db".into()))),
            (Input::Char('k'), Effect::Reload),
            (Input::Char('s'), Effect::Act(Action::Stop("api".into()))),
            (Input::Tab, Effect::Reload),
            (Input::Char('q'), Effect::Quit),
        ];
        for (input, effect) in rows {
            assert_eq!(app.on_input(input, &none), effect, "{input:?}");
        }
        assert!(app.all);
        assert_eq!(app.on_input(Input::Char('m'), &none), Effect::Mouse(false));
        assert_eq!(app.on_input(Input::Char('A'), &none), Effect::Act(Action::StartAll));
        assert_eq!(app.on_input(Input::Interrupt, &none), Effect::Quit);
    }

    #[test]
    fn search_marks_the_newest_match_then_older_ones_and_wraps() {
        let mut app = app();
        let log = lines(&["a ready", "b", "c \u{1b}[1mREADY\u{1b}[0m", "d", "e", "f"]);
        for c in "/ready".chars() {
            app.on_input(Input::Char(c), &log);
        }
        assert_eq!(app.typing.as_deref(), Some("ready"));
        app.on_input(Input::Enter, &log);
        assert_eq!(app.cursor, Some(2));
        assert_eq!(app.bottom, Some(4));
        app.on_input(Input::Char('n'), &log);
        assert_eq!(app.cursor, Some(0));
        app.on_input(Input::Char('n'), &log);
        assert_eq!(app.cursor, Some(2), "wraps around to the newest");
        assert_eq!(app.on_input(Input::Char('c'), &log), Effect::Copy("c READY".into()));
        app.query = Some("nowhere".into());
        app.on_input(Input::Char('n'), &log);
        assert_eq!(app.said.as_deref(), Some("no line matches `nowhere`"));
    }

    #[test]
    fn scrolling_stops_at_either_end_and_f_follows_again() {
        let mut app = app();
        let log = lines(&["1", "2", "3", "4", "5", "6"]);
        app.on_input(Input::PageUp, &log);
        assert_eq!(app.bottom, Some(4));
        for _ in 0..5 {
            app.on_input(Input::PageUp, &log);
        }
        assert_eq!(app.bottom, Some(2), "the first page is the top");
        app.on_input(Input::WheelDown, &log);
        assert_eq!(app.bottom, Some(5));
        app.on_input(Input::PageDown, &log);
        assert_eq!(app.bottom, None, "past the end it follows");
        app.on_input(Input::PageUp, &log);
        app.shift(3);
        assert_eq!(app.bottom, Some(1));
        app.on_input(Input::Char('f'), &log);
        assert_eq!(app.bottom, None);
    }
}
