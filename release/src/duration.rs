//! Durations as release engineers and operators write them: a whole
//! number and one unit (`90d`, `12h`, `2w`, `30m`, `45s`).

use jiff::SignedDuration;

/// Parses a duration like `90d`, `12h`, `2w`, `30m`, `45s`.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration `{text}` has no unit (use s, m, h, d or w)"))?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("duration `{text}` does not start with a number"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "duration `{text}`: unknown unit `{unit}` (use s, m, h, d or w)"
            ));
        }
    };
    n.checked_mul(secs)
        .map(SignedDuration::from_secs)
        .ok_or_else(|| format!("duration `{text}` is too long"))
}
