//! The setup QR code drawn in a terminal. UTF-8 mode packs two module rows
//! into one text row with half blocks and sets black on white explicitly,
//! so the code scans on dark and light terminals alike; ASCII mode uses two
//! characters per module for terminals without Unicode.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the code, as the QR specification asks.
pub const QUIET_ZONE: usize = 4;

/// How to draw the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Utf8,
    Ascii,
}

/// The modules, dark = true, with the quiet zone included.
pub fn modules(text: &str) -> Result<Vec<Vec<bool>>, String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| e.to_string())?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET_ZONE;
    let mut grid = vec![vec![false; size]; size];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            grid[i / width + QUIET_ZONE][i % width + QUIET_ZONE] = true;
        }
    }
    Ok(grid)
}

/// The code as terminal text, one line per text row.
pub fn render(text: &str, style: Style) -> Result<String, String> {
    let grid = modules(text)?;
    let mut out = String::new();
    match style {
        Style::Ascii => {
            for row in &grid {
                for &dark in row {
                    out.push_str(if dark { "##" } else { "  " });
                }
                out.push('\n');
            }
        }
        Style::Utf8 => {
            // Black foreground on bright white background, reset at line end.
            for pair in grid.chunks(2) {
                out.push_str("\x1b[30;107m");
                for x in 0..pair[0].len() {
                    let top = pair[0][x];
                    let bottom = pair.get(1).is_some_and(|r| r[x]);
                    out.push(match (top, bottom) {
                        (true, true) => '█',
                        (true, false) => '▀',
                        (false, true) => '▄',
                        (false, false) => ' ',
                    });
                }
                out.push_str("\x1b[0m\n");
            }
        }
    }
    Ok(out)
}

/// Reads a rendered code back into modules (for tests and tools that turn
/// the terminal text into an image).
pub fn parse(rendered: &str, style: Style) -> Vec<Vec<bool>> {
    let mut grid = Vec::new();
    for line in rendered.lines() {
        let line = line.replace("\x1b[30;107m", "").replace("\x1b[0m", "");
        match style {
            Style::Ascii => {
                let chars: Vec<char> = line.chars().collect();
                grid.push(chars.chunks(2).map(|c| c[0] == '#').collect());
            }
            Style::Utf8 => {
                let (mut top, mut bottom) = (Vec::new(), Vec::new());
                for c in line.chars() {
                    top.push(matches!(c, '█' | '▀'));
                    bottom.push(matches!(c, '█' | '▄'));
                }
                grid.push(top);
                grid.push(bottom);
            }
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_styles_draw_the_same_modules_with_a_quiet_zone() {
        let uri = "otpauth://totp/pam-mfa:alice%40host?secret=JBSWY3DPEHPK3PXP&issuer=pam-mfa";
        let grid = modules(uri).unwrap();
        assert!(grid[..QUIET_ZONE].iter().all(|row| row.iter().all(|d| !d)));
        assert!(grid.iter().all(|row| row[..QUIET_ZONE].iter().all(|d| !d)));
        let ascii = parse(&render(uri, Style::Ascii).unwrap(), Style::Ascii);
        assert_eq!(ascii, grid);
        let utf8 = parse(&render(uri, Style::Utf8).unwrap(), Style::Utf8);
        assert_eq!(&utf8[..grid.len()], &grid[..]);
        assert!(render(uri, Style::Utf8).unwrap().contains("\x1b[30;107m"));
    }
}
