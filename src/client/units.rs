//! Human units in: sizes (`512M`), durations (`10m`), CPU (`150%`, `1.5`).

/// The time between SIGTERM and SIGKILL of every stop (a workspace, a
/// pipeline, a command) unless --grace says otherwise.
pub const DEFAULT_GRACE: &str = "1s";

/// Splits `1.5G` into the number and what follows it.
fn split_number(t: &str) -> Option<(f64, &str)> {
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit))
}

/// Parses a size: a number with an optional binary suffix K, M, G, T (also
/// KiB/KB/k...), `max` for no limit. `512M` is 512 MiB.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("max") || t.eq_ignore_ascii_case("infinity") {
        return Ok(u64::MAX);
    }
    let (n, unit) = split_number(t)
        .ok_or_else(|| format!("{text:?} is not a size; write e.g. 512M, 2G, 1048576"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches('B')
        .trim_end_matches('I')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown size unit {unit:?}; use K, M, G or T"
            ))
        }
    };
    let v = n * mult as f64;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(v as u64)
}

/// Parses a duration into milliseconds: `500ms`, `30s`, `10m`, `2h`, `1d`,
/// or several as systemd writes them (`1h30m`, `2m 30s`); a bare number is
/// seconds, as in systemd.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a duration; write e.g. 500ms, 30s, 10m, 2h, 1h30m");
    let mut rest = t;
    let mut total = 0.0;
    let mut parts = 0;
    while !rest.is_empty() {
        let (n, after) = split_number(rest).ok_or_else(bad)?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let mult = match unit {
            "ms" => 1.0,
            // A bare number is seconds, alone only.
            "" if parts == 0 && next.trim().is_empty() => 1000.0,
            "s" | "sec" => 1000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "" => return Err(bad()),
            u => {
                return Err(format!(
                    "{text:?}: unknown duration unit {u:?}; use ms, s, m, h or d"
                ))
            }
        };
        total += n * mult;
        parts += 1;
        rest = next.trim_start();
    }
    if parts == 0 {
        return Err(bad());
    }
    if !total.is_finite() || total >= u64::MAX as f64 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(total.round() as u64)
}

/// Parses a CPU quota into percent of one CPU: `150%` or `1.5` (cores).
pub fn parse_cpu_percent(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a CPU quota; write e.g. 50%, 150% or 1.5 (cores)");
    let pct = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map_err(|_| bad())?,
        None => t.parse::<f64>().map_err(|_| bad())? * 100.0,
    };
    if !pct.is_finite() || pct < 0.0 || pct > u32::MAX as f64 {
        return Err(bad());
    }
    Ok(pct.round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("max"), Ok(u64::MAX));
        assert!(parse_size("12X").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2s"), Ok(2000));
        assert_eq!(parse_duration_ms("10m"), Ok(600_000));
        assert_eq!(parse_duration_ms("1.5h"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("3"), Ok(3000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("2m 30s"), Ok(150_000));
        assert_eq!(parse_duration_ms("1d2h"), Ok(93_600_000));
        assert!(
            parse_duration_ms("1h30").is_err(),
            "a bare number only alone"
        );
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("h").is_err());
        assert!(parse_duration_ms("3 weeks").is_err());
    }

    #[test]
    fn cpu() {
        assert_eq!(parse_cpu_percent("150%"), Ok(150));
        assert_eq!(parse_cpu_percent("1.5"), Ok(150));
        assert_eq!(parse_cpu_percent("20%"), Ok(20));
        assert!(parse_cpu_percent("-1").is_err());
        assert!(parse_cpu_percent("fast").is_err());
    }
}
