//! bcrypt hashes per second on one thread at a cost, for `bench/run` (the login ceiling is
//! cores × this rate). Usage: bcrypt_rate COST SECONDS

use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let cost: u32 = args.next().and_then(|c| c.parse().ok()).unwrap_or(12);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let hash = bcrypt::hash("bench password", cost).expect("hash");
    let (start, mut count) = (Instant::now(), 0u32);
    while start.elapsed() < Duration::from_secs_f64(seconds) || count == 0 {
        std::hint::black_box(bcrypt::verify("bench password", &hash).expect("verify"));
        count += 1;
    }
    println!("bcrypt_rate {cost} {:.2}", f64::from(count) / start.elapsed().as_secs_f64());
}
