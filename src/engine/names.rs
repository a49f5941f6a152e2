//! Deterministic names for children. AWS limits names per service (IAM roles
//! 64 characters, target groups 32, ...), so a long composite name is cut and
//! given a short hash of the full identity to stay unique and stable.

/// FNV-1a, 64 bit: stable across builds and platforms (unlike `DefaultHasher`).
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Eight lowercase hex characters derived from `seed`.
pub fn short_hash(seed: &str) -> String {
    format!("{:08x}", (fnv1a(seed) >> 32) as u32)
}

/// `<base cut to fit>-<hash of seed><suffix>`, at most `max` characters.
/// Characters `allowed` rejects in `base` become `-`; runs of `-` collapse and
/// the result never starts or ends with `-`.
pub fn bounded(base: &str, seed: &str, suffix: &str, max: usize, allowed: impl Fn(char) -> bool) -> String {
    let hash = short_hash(seed);
    let tail = format!("-{hash}{suffix}");
    let room = max.saturating_sub(tail.len());
    let mut cleaned = String::new();
    for ch in base.chars() {
        let c = if allowed(ch) { ch } else { '-' };
        if c == '-' && (cleaned.is_empty() || cleaned.ends_with('-')) {
            continue;
        }
        cleaned.push(c);
    }
    let mut cut: String = cleaned.chars().take(room).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    if cut.is_empty() { format!("{hash}{suffix}").chars().take(max).collect() } else { format!("{cut}{tail}") }
}

/// The registry host of an account's ECR in a region.
pub fn ecr_host(account: &str, region: &str) -> String {
    let domain = if partition(region) == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("{account}.dkr.ecr.{region}.{domain}")
}

/// The partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}
