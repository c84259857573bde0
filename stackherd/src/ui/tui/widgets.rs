//! Drawing the screen: the services table on top, the log pane, the events strip and
//! the keys at the bottom. Columns that do not fit a narrow terminal are left out, the
//! least needed first, so that 80 columns still show what matters.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row as TableRow, Table, TableState, Wrap};

use super::{Drawn, LogPane, Screen, Tone, ansi};
use crate::ui::service_color;

/// The lines of the events strip.
const EVENT_LINES: u16 = 3;

const KEYS: &str = "↑↓/jk select  Enter/Tab one/all logs  r restart  s stop  S start  / search  n next  \
                    PgUp/PgDn scroll  f follow  c copy  m mouse  q quit";

pub fn draw(frame: &mut Frame, screen: &Screen) -> Drawn {
    let area = frame.area();
    let footer = footer_lines(screen, area.width);
    let table_height = u16::try_from(screen.rows.len())
        .unwrap_or(u16::MAX)
        .saturating_add(2)
        .min((area.height.saturating_mul(2) / 5).max(4));
    let [table, log, events, keys] = Layout::vertical([
        Constraint::Length(table_height),
        Constraint::Min(3),
        Constraint::Length(EVENT_LINES.saturating_add(1)),
        Constraint::Length(u16::try_from(footer.len()).unwrap_or(2)),
    ])
    .areas(area);
    draw_table(frame, screen, table);
    draw_log(frame, &screen.log, screen.color, log);
    draw_events(frame, screen, events);
    frame.render_widget(Paragraph::new(footer).wrap(Wrap { trim: false }), keys);
    Drawn {
        log_height: log.height.saturating_sub(1),
    }
}

/// A table column: its header, its width, and when it is dropped (lower first).
struct Column {
    header: &'static str,
    width: u16,
    keep: u8,
}

const COLUMNS: [Column; 10] = [
    Column {
        header: "SERVICE",
        width: 8,
        keep: 9,
    },
    Column {
        header: "STATE",
        width: 10,
        keep: 9,
    },
    Column {
        header: "HEALTH",
        width: 9,
        keep: 8,
    },
    Column {
        header: "PID",
        width: 7,
        keep: 7,
    },
    Column {
        header: "UPTIME",
        width: 7,
        keep: 4,
    },
    Column {
        header: "CPU%",
        width: 5,
        keep: 5,
    },
    Column {
        header: "RSS",
        width: 6,
        keep: 5,
    },
    Column {
        header: "RESTARTS",
        width: 8,
        keep: 3,
    },
    Column {
        header: "PORTS",
        width: 11,
        keep: 2,
    },
    Column {
        header: "BUILD",
        width: 14,
        keep: 1,
    },
];

fn draw_table(frame: &mut Frame, screen: &Screen, area: Rect) {
    let name_width = screen
        .rows
        .iter()
        .map(|r| u16::try_from(r.name.chars().count()).unwrap_or(u16::MAX))
        .max()
        .unwrap_or(0)
        .clamp(7, 24);
    let state_width = screen
        .rows
        .iter()
        .map(|r| u16::try_from(r.state.chars().count()).unwrap_or(u16::MAX))
        .max()
        .unwrap_or(0)
        .clamp(10, 36);
    let width_of = |i: usize, c: &Column| match i {
        0 => name_width,
        1 => state_width,
        _ => c.width,
    };
    // Leave out the least needed columns until the rest fits (one space between).
    let mut shown: Vec<usize> = (0..COLUMNS.len()).collect();
    let total = |shown: &[usize]| -> u16 {
        shown
            .iter()
            .filter_map(|&i| COLUMNS.get(i).map(|c| width_of(i, c).saturating_add(1)))
            .fold(0u16, u16::saturating_add)
    };
    for keep in 1..=5u8 {
        if total(&shown) <= area.width {
            break;
        }
        shown.retain(|&i| COLUMNS.get(i).is_some_and(|c| c.keep > keep));
    }
    let header = TableRow::new(
        shown
            .iter()
            .filter_map(|&i| COLUMNS.get(i).map(|c| Cell::from(c.header))),
    )
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = screen.rows.iter().enumerate().map(|(index, row)| {
        let cells = [
            &row.name,
            &row.state,
            &row.health,
            &row.pid,
            &row.uptime,
            &row.cpu,
            &row.rss,
            &row.restarts,
            &row.ports,
            &row.build,
        ];
        TableRow::new(shown.iter().filter_map(|&i| {
            let text = cells.get(i)?.as_str();
            let style = match i {
                0 if screen.color => Style::default().fg(to_color(service_color(index))),
                1 | 2 if screen.color => tone_style(row.tone),
                _ => Style::default(),
            };
            Some(Cell::from(Span::styled(text.to_string(), style)))
        }))
    });
    let widths: Vec<Constraint> = shown
        .iter()
        .filter_map(|&i| COLUMNS.get(i).map(|c| Constraint::Length(width_of(i, c))))
        .collect();
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::TOP).title(Span::styled(
            screen.title.clone(),
            Style::default().add_modifier(Modifier::BOLD),
        )))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(screen.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_log(frame: &mut Frame, pane: &LogPane, color: bool, area: Rect) {
    let height = usize::from(area.height.saturating_sub(1));
    let bottom = pane.bottom.unwrap_or(pane.lines.len()).min(pane.lines.len());
    let top = bottom.saturating_sub(height);
    let width = pane.names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let lines: Vec<Line> = pane
        .lines
        .range(top..bottom)
        .enumerate()
        .map(|(offset, line)| {
            let mut spans = Vec::new();
            if pane.prefixed {
                let name = pane.names.get(line.service).map_or("", String::as_str);
                let style = if color {
                    Style::default().fg(to_color(service_color(line.service)))
                } else {
                    Style::default()
                };
                spans.push(Span::styled(format!("{name:<width$} | "), style));
            }
            spans.extend(highlighted(
                ansi::spans(&line.text, Style::default(), color),
                pane.query,
            ));
            let line = Line::from(spans);
            if pane.cursor == Some(top.saturating_add(offset)) {
                line.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                line
            }
        })
        .collect();
    let block = Block::default().borders(Borders::TOP).title(pane.title.clone());
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Marks each occurrence of `query` (case-insensitive) within the spans.
fn highlighted(spans: Vec<Span<'static>>, query: Option<&str>) -> Vec<Span<'static>> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return spans;
    };
    let needle = query.to_lowercase();
    let mut out = Vec::new();
    for span in spans {
        let text = span.content.into_owned();
        let lower = text.to_lowercase();
        // Lower-casing can change lengths outside ASCII: mark only where it did not.
        if lower.len() != text.len() {
            out.push(Span::styled(text, span.style));
            continue;
        }
        let mut at = 0;
        for (start, found) in lower.match_indices(&needle) {
            let end = start.saturating_add(found.len());
            if let (Some(before), Some(matched)) = (text.get(at..start), text.get(start..end)) {
                out.push(Span::styled(before.to_string(), span.style));
                out.push(Span::styled(
                    matched.to_string(),
                    span.style.add_modifier(Modifier::REVERSED | Modifier::BOLD),
                ));
                at = end;
            }
        }
        out.push(Span::styled(text.get(at..).unwrap_or("").to_string(), span.style));
    }
    out
}

fn draw_events(frame: &mut Frame, screen: &Screen, area: Rect) {
    let shown = usize::from(area.height.saturating_sub(1));
    let skip = screen.events.len().saturating_sub(shown);
    let lines: Vec<Line> = screen
        .events
        .iter()
        .skip(skip)
        .map(|e| Line::from(ansi::spans(e, Style::default(), screen.color)))
        .collect();
    let block = Block::default().borders(Borders::TOP).title("events");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The notice or the search prompt, then the keys.
fn footer_lines(screen: &Screen, width: u16) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let emphasis = if screen.color {
        Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::default().add_modifier(Modifier::BOLD)
    };
    if let Some(prompt) = screen.prompt {
        lines.push(Line::from(Span::styled(
            format!("/{prompt}▏  (Enter searches, Esc cancels)"),
            emphasis,
        )));
    } else if let Some(notice) = screen.notice {
        lines.push(Line::from(Span::styled(notice.to_string(), emphasis)));
    }
    let mouse = if screen.mouse {
        "  [mouse: UI]"
    } else {
        "  [mouse: terminal]"
    };
    let keys = format!("{KEYS}{mouse}");
    let rows = keys.chars().count().div_ceil(usize::from(width.max(1)));
    lines.push(Line::from(Span::styled(
        keys,
        Style::default().add_modifier(Modifier::DIM),
    )));
    // The keys wrap onto a second row on a narrow terminal.
    if rows > 1 {
        lines.push(Line::default());
    }
    lines
}

fn tone_style(tone: Tone) -> Style {
    match tone {
        Tone::Good => Style::default().fg(Color::Green),
        Tone::Busy => Style::default().fg(Color::Yellow),
        Tone::Bad => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        Tone::Idle => Style::default().add_modifier(Modifier::DIM),
    }
}

fn to_color(color: anstyle::AnsiColor) -> Color {
    use anstyle::AnsiColor as A;
    match color {
        A::Black => Color::Black,
        A::Red => Color::Red,
        A::Green => Color::Green,
        A::Yellow => Color::Yellow,
        A::Blue => Color::Blue,
        A::Magenta => Color::Magenta,
        A::Cyan => Color::Cyan,
        A::White => Color::Gray,
        A::BrightBlack => Color::DarkGray,
        A::BrightRed => Color::LightRed,
        A::BrightGreen => Color::LightGreen,
        A::BrightYellow => Color::LightYellow,
        A::BrightBlue => Color::LightBlue,
        A::BrightMagenta => Color::LightMagenta,
        A::BrightCyan => Color::LightCyan,
        A::BrightWhite => Color::White,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::ui::tui::{LogLine, Row};

    fn screen_text(width: u16, height: u16, rows: &[Row], lines: &VecDeque<LogLine>) -> String {
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let events = VecDeque::from(vec!["12:00:01 api: healthy".to_string()]);
        let screen = Screen {
            title: "demo".into(),
            rows,
            selected: 0,
            log: LogPane {
                title: "api".into(),
                lines,
                names: &names,
                prefixed: true,
                bottom: None,
                cursor: None,
                query: Some("ready"),
            },
            events: &events,
            prompt: None,
            notice: None,
            mouse: true,
            color: false,
        };
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
        let mut drawn = Drawn::default();
        terminal.draw(|f| drawn = draw(f, &screen)).expect("draw");
        assert!(drawn.log_height > 0);
        let buffer = terminal.backend().buffer().clone();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer.cell((x, y)).map_or(" ", |c| c.symbol()))
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_screen_fits_80_by_24_and_shows_every_part() {
        let rows: Vec<Row> = ["store", "api", "worker"]
            .iter()
            .map(|name| Row {
                name: (*name).into(),
                state: "running".into(),
                health: "healthy".into(),
                pid: "4242".into(),
                uptime: "5m 02s".into(),
                cpu: "0.1".into(),
                rss: "2.0M".into(),
                restarts: "0".into(),
                ports: "8080".into(),
                build: "ok 3s ago".into(),
                tone: Tone::Good,
            })
            .collect();
        let lines: VecDeque<LogLine> = (0..40)
            .map(|i| LogLine {
                service: i % 3,
                text: format!("line {i} \u{1b}[32mready\u{1b}[0m"),
            })
            .collect();
        let text = screen_text(80, 24, &rows, &lines);
        for expected in [
            "SERVICE",
            "STATE",
            "HEALTH",
            "worker",
            "running",
            "healthy",
            "store  | line 39 ready",
        ] {
            assert!(text.contains(expected), "no {expected:?} in\n{text}");
        }
        assert!(text.contains("q quit"), "keys missing\n{text}");
        assert!(text.contains("12:00:01 api: healthy"), "events missing\n{text}");
        // Narrow: the build column goes first.
        assert!(!text.contains("BUILD"), "{text}");
        let wide = screen_text(140, 30, &rows, &lines);
        assert!(wide.contains("BUILD") && wide.contains("ok 3s ago"), "{wide}");
    }
}
