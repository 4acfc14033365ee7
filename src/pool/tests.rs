use super::*;

#[test]
fn backoff_grows_by_the_multiplier_up_to_the_cap() {
    let b = Backoff::exponential(Duration::from_millis(100));
    assert_eq!(b.delay(1), Duration::from_millis(100));
    assert_eq!(b.delay(2), Duration::from_millis(150));
    assert_eq!(b.delay(3), Duration::from_millis(225));
    assert_eq!(b.delay(40), Duration::from_secs(15));
    assert_eq!(b.delay(u32::MAX), Duration::from_secs(15));
}

#[test]
fn logical_ids_set_the_count() {
    let p = Pool::new("p", WorkerSpec::new("/bin/true")).logical_ids([5, 6, 7]);
    assert_eq!(p.workers, 3);
    let p = Pool::new("p", WorkerSpec::new("/bin/true"))
        .workers(2)
        .logical_ids([5, 6, 7]);
    assert_eq!(
        p.workers, 2,
        "an explicit count is kept (and validation refuses the mismatch)"
    );
}
