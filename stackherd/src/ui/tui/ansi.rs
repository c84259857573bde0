//! A log line's own colours (SGR escape sequences, as a `tty` service writes them) as
//! styled spans. The line is parsed by the same code as every other output of text
//! from another process (`ui::text`), so every other sequence is dropped and a line
//! cannot move the cursor or change the terminal under the UI.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

use crate::ui::text::{Piece, pieces};

/// The spans of `text` over `base`; with `color` false (NO_COLOR) only bold, dim,
/// italic, underline and reverse are kept.
pub fn spans(text: &str, base: Style, color: bool) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    let mut style = base;
    for piece in pieces(text) {
        match piece {
            // ratatui draws a tab as one cell.
            Piece::Text(plain) => out.push(Span::styled(plain.replace('\t', "    "), style)),
            Piece::Sgr(params) => style = sgr(style, base, &params, color),
        }
    }
    out
}

/// `text` without escape sequences and control characters: what a search matches.
pub fn plain(text: &str) -> String {
    crate::ui::text::plain(text).replace('\t', "    ")
}

/// The style after one SGR sequence.
fn sgr(mut style: Style, base: Style, params: &str, color: bool) -> Style {
    let mut codes = params.split([';', ':']).map(|p| p.parse::<u16>().unwrap_or(0));
    while let Some(code) = codes.next() {
        style = match code {
            0 => base,
            1 => style.add_modifier(Modifier::BOLD),
            2 => style.add_modifier(Modifier::DIM),
            3 => style.add_modifier(Modifier::ITALIC),
            4 => style.add_modifier(Modifier::UNDERLINED),
            7 => style.add_modifier(Modifier::REVERSED),
            22 => style.remove_modifier(Modifier::BOLD | Modifier::DIM),
            23 => style.remove_modifier(Modifier::ITALIC),
            24 => style.remove_modifier(Modifier::UNDERLINED),
            27 => style.remove_modifier(Modifier::REVERSED),
            30..=37 | 90..=97 if color => style.fg(basic(code % 10, code >= 90)),
            40..=47 | 100..=107 if color => style.bg(basic(code % 10, code >= 100)),
            38 | 48 => match extended(&mut codes) {
                Some(c) if color && code == 38 => style.fg(c),
                Some(c) if color => style.bg(c),
                _ => style,
            },
            39 => Style { fg: base.fg, ..style },
            49 => Style { bg: base.bg, ..style },
            _ => style,
        };
    }
    style
}

/// `5;N` (one of 256) or `2;R;G;B` after a 38 or 48.
fn extended(codes: &mut impl Iterator<Item = u16>) -> Option<Color> {
    let byte = |v: Option<u16>| v.and_then(|v| u8::try_from(v).ok());
    match codes.next()? {
        5 => byte(codes.next()).map(Color::Indexed),
        2 => Some(Color::Rgb(
            byte(codes.next())?,
            byte(codes.next())?,
            byte(codes.next())?,
        )),
        _ => None,
    }
}

fn basic(n: u16, bright: bool) -> Color {
    match (n, bright) {
        (0, false) => Color::Black,
        (1, false) => Color::Red,
        (2, false) => Color::Green,
        (3, false) => Color::Yellow,
        (4, false) => Color::Blue,
        (5, false) => Color::Magenta,
        (6, false) => Color::Cyan,
        (7, false) => Color::Gray,
        (0, true) => Color::DarkGray,
        (1, true) => Color::LightRed,
        (2, true) => Color::LightGreen,
        (3, true) => Color::LightYellow,
        (4, true) => Color::LightBlue,
        (5, true) => Color::LightMagenta,
        (6, true) => Color::LightCyan,
        _ => Color::White,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str, color: bool) -> Vec<(String, Style)> {
        spans(text, Style::default(), color)
            .into_iter()
            .map(|s| (s.content.into_owned(), s.style))
            .collect()
    }

    #[test]
    fn colours_become_styles_and_other_sequences_vanish() {
        let red = Style::default().fg(Color::Red);
        let cases: Vec<(&str, Vec<(&str, Style)>)> = vec![
            ("plain", vec![("plain", Style::default())]),
            (
                "\u{1b}[31merr\u{1b}[0m ok",
                vec![("err", red), (" ok", Style::default())],
            ),
            (
                "\u{1b}[1;38;5;208mhot",
                vec![(
                    "hot",
                    Style::default().add_modifier(Modifier::BOLD).fg(Color::Indexed(208)),
                )],
            ),
            (
                "\u{1b}[38;2;1;2;3mrgb",
                vec![("rgb", Style::default().fg(Color::Rgb(1, 2, 3)))],
            ),
            ("a\u{1b}[2Kb\u{1b}]0;title\u{7}c", vec![("abc", Style::default())]),
            ("10%\r100%", vec![("100%", Style::default())]),
            ("\u{1b}[38;5;999mbad", vec![("bad", Style::default())]),
            ("\u{1b}[", vec![]),
            // `tput sgr0`: a charset designation, then a reset.
            (
                "\u{1b}[31mx\u{1b}(B\u{1b}[my",
                vec![("x", red), ("y", Style::default())],
            ),
        ];
        for (input, expected) in cases {
            let expected: Vec<(String, Style)> = expected.into_iter().map(|(t, s)| (t.to_string(), s)).collect();
            assert_eq!(shown(input, true), expected, "{input:?}");
        }
    }

    #[test]
    fn without_colour_only_emphasis_is_kept() {
        assert_eq!(
            shown("\u{1b}[1;31mbold red", false),
            vec![("bold red".to_string(), Style::default().add_modifier(Modifier::BOLD))]
        );
        assert_eq!(plain("\u{1b}[32mgreen\u{1b}[0m text"), "green text");
    }
}
