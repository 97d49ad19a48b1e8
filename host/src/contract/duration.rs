//! Durations as people write them, in specs and on the command line alike: seconds as a number
//! (`30`, `0.5`) or a number with a unit (`500ms`, `30s`, `2m`, `1h`). One parser, so a value
//! that a spec accepts is accepted by `--timeout` too.

use std::time::Duration;

/// What every duration must stay under: a day.
pub const MAX: Duration = Duration::from_secs(24 * 3600);

/// The duration `text` means, or `None`. Zero and values over [`MAX`] are the caller's to refuse.
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// A positive duration of at most [`MAX`], or a message that says how to write one.
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    match parse(text) {
        Some(d) if !d.is_zero() && d <= MAX => Ok(d),
        _ => Err(format!(
            "`{text}` is not a positive duration of at most 24h; write seconds as a number (30, 0.5) or a number with a unit (500ms, 30s, 2m, 1h)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_units() {
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("5 years"), None);
        assert!(parse_positive("0").is_err());
        assert!(parse_positive("25h").is_err());
        assert_eq!(parse_positive("1h"), Ok(Duration::from_secs(3600)));
    }
}
