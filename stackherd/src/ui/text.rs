//! Text that another process wrote (a service's output, a probe's error, a command line
//! read from `/proc`), made fit for a terminal. A terminal obeys what it is sent: an
//! OSC 52 sets the clipboard, an OSC 2 the window title, `ESC[6n` makes it type its
//! answer into the shell. So every sequence is parsed (anstyle-parse, the VT parser
//! anstream already brings) and only colour (SGR) survives; every other sequence and
//! control character is dropped. The terminal UI draws from the same pieces.
//!
//! Colour is then the output's business: anstream strips it when the output is not a
//! terminal or under NO_COLOR; the terminal UI keeps only emphasis there.

use anstyle_parse::{Params, Parser, Perform};

/// One part of a line as a terminal may show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Printable text (tabs kept: each output decides how wide they are).
    Text(String),
    /// The parameters of a colour sequence (`1;31` of `ESC[1;31m`; empty is a reset).
    Sgr(String),
}

/// The pieces of one line: a carriage return redraws the line (progress bars), so what
/// follows the last one wins, as on the terminal that drew it.
pub fn pieces(line: &str) -> Vec<Piece> {
    let line = line.rsplit('\r').find(|part| !part.is_empty()).unwrap_or("");
    // Most lines hold no control character at all: nothing to parse.
    if !line.chars().any(|c| c.is_control() && c != '\t') {
        return if line.is_empty() {
            Vec::new()
        } else {
            vec![Piece::Text(line.to_owned())]
        };
    }
    let mut collect = Collect::default();
    let mut parser = Parser::<anstyle_parse::DefaultCharAccumulator>::new();
    for byte in line.bytes() {
        parser.advance(&mut collect, byte);
    }
    collect.flush();
    collect.pieces
}

/// `line` as a terminal may show it: its colours kept, nothing else of its sequences.
/// A line that changed colour ends with a reset, so that its colour does not run on.
pub fn shown(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut coloured = false;
    for piece in pieces(line) {
        match piece {
            Piece::Text(text) => out.push_str(&text),
            Piece::Sgr(params) => {
                coloured = !(params.is_empty() || params == "0");
                out.push_str("\u{1b}[");
                out.push_str(&params);
                out.push('m');
            }
        }
    }
    if coloured {
        out.push_str("\u{1b}[0m");
    }
    out
}

/// `line` without any sequence: what a table cell, a search or a message shows.
pub fn plain(line: &str) -> String {
    pieces(line)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Text(text) => Some(text),
            Piece::Sgr(_) => None,
        })
        .collect()
}

/// `plain(line)`, cut to at most `max` characters (the last one then `…`). Cut after
/// the sequences are gone, so that no cut falls inside one.
pub fn clipped(line: &str, max: usize) -> String {
    let plain = plain(line).replace('\t', " ");
    if plain.chars().count() <= max {
        plain
    } else {
        let kept: String = plain.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// `text` with every control character shown escaped (`\e]52;…\a`): for text whose
/// every character matters, such as a command line read from `/proc`, printed as data.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{1b}' => out.push_str("\\e"),
            '\u{7}' => out.push_str("\\a"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// JSON text with DEL and the C1 controls (U+007F..U+009F) written as `\u` escapes:
/// JSON lets them stand raw, and a terminal in 8-bit mode would obey them (a service's
/// last line in `status --json`). The value a JSON reader gets is the same.
pub fn json_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        // serde_json has escaped U+0000..U+001F inside strings (a newline outside
        // them is layout): these are the rest.
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Default)]
struct Collect {
    pieces: Vec<Piece>,
    text: String,
}

impl Collect {
    fn flush(&mut self) {
        if !self.text.is_empty() {
            self.pieces.push(Piece::Text(std::mem::take(&mut self.text)));
        }
    }
}

impl Perform for Collect {
    fn print(&mut self, c: char) {
        // C1 controls (U+0080..U+009F) arrive here as characters: a terminal in
        // 8-bit mode would obey them.
        if !c.is_control() {
            self.text.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        if byte == b'\t' {
            self.text.push('\t');
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: u8) {
        if action != b'm' || !intermediates.is_empty() || ignore {
            return;
        }
        let groups: Vec<String> = params
            .iter()
            .map(|group| group.iter().map(u16::to_string).collect::<Vec<_>>().join(":"))
            .collect();
        self.flush();
        self.pieces.push(Piece::Sgr(groups.join(";")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "ok \u{1b}]52;c;Y3VybCBldmlsLnNofHNo\u{7}\u{1b}]2;OWNED\u{7} done";

    #[test]
    fn only_colour_survives() {
        assert_eq!(shown(HOSTILE), "ok  done");
        assert_eq!(shown("a\u{1b}[2Jb\u{1b}[6nc\u{1b}[10;4Hd"), "abcd");
        // A DCS, C1 controls as characters, a bell and a backspace.
        assert_eq!(shown("x\u{1b}P1$qm\u{1b}\\y\u{9b}2J\u{7}\u{8}z"), "xy2Jz");
        // `tput sgr0` is `ESC ( B ESC [ m`: the charset designation leaves nothing.
        assert_eq!(
            shown("\u{1b}[31mred\u{1b}(B\u{1b}[m plain"),
            "\u{1b}[31mred\u{1b}[0m plain"
        );
        assert_eq!(shown("\u{1b}[1;38:5:208mhot"), "\u{1b}[1;38:5:208mhot\u{1b}[0m");
    }

    #[test]
    fn an_unterminated_sequence_swallows_only_its_own_line() {
        assert_eq!(shown("cut here \u{1b}]52;c;Y3Vy"), "cut here ");
        assert_eq!(shown("next line"), "next line");
    }

    #[test]
    fn a_line_without_controls_is_one_piece() {
        assert_eq!(pieces("plain\ttext é"), vec![Piece::Text("plain\ttext é".into())]);
        assert_eq!(pieces(""), Vec::new());
        assert_eq!(plain("a\u{85}b"), "ab");
    }

    #[test]
    fn the_last_redraw_of_a_line_wins() {
        assert_eq!(plain("10%\r20%\r100%"), "100%");
        assert_eq!(plain("tty line\r"), "tty line");
    }

    #[test]
    fn cuts_fall_between_sequences() {
        let line = format!("{}\u{1b}]2;{}\u{7}tail", "a".repeat(58), "t".repeat(20));
        assert_eq!(clipped(&line, 60), format!("{}t…", "a".repeat(58)));
        assert_eq!(clipped("\u{1b}[31mshort\u{1b}[0m", 60), "short");
    }

    #[test]
    fn json_keeps_its_value_and_loses_its_c1_controls() {
        let value = serde_json::json!({"line": "a\u{9d}0;t\u{9c}\u{7f}\u{1b}b"});
        let json = json_safe(&serde_json::to_string_pretty(&value).expect("json"));
        assert!(!json.chars().any(|c| c.is_control() && c != '\n'), "{json:?}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&json).expect("parse"), value);
    }

    #[test]
    fn escaped_text_shows_every_control() {
        assert_eq!(
            escaped("ok \u{1b}]52;c;eA==\u{7}\t\u{9b}"),
            "ok \\e]52;c;eA==\\a\\t\\x9b"
        );
    }
}
