//! Rule 0: an alert in triage sends nothing until a coordinator or its timer releases it.

use super::*;

#[test]
fn an_alert_in_triage_sends_nothing_until_released() {
    let snapshot = alert_at(AlertStatus::Triage, 0);
    for trigger in [
        Trigger::NeedsWave,
        Trigger::Replace,
        Trigger::Deadline { wave: 1 },
    ] {
        assert_eq!(
            plan(&snapshot, trigger, now(), no_matcher),
            Plan::Nothing(Skip::InTriage)
        );
    }
}

#[test]
fn the_triage_timer_releases_the_alert_and_sends_its_first_wave_in_one_plan() {
    let snapshot = alert_at(AlertStatus::Triage, 0);
    let changes = written(run(
        &snapshot,
        Trigger::Deadline { wave: 0 },
        at(&[100.0, 200.0]),
    ));
    assert_eq!(changes.status, Some(AlertStatus::Dispatching));
    assert_eq!(changes.events[0], Event::Released { by: None });
    assert!(matches!(
        changes.events[1],
        Event::OffersSent { wave: 1, .. }
    ));
    assert_eq!(offered(&changes), [volunteer(1), volunteer(2)]);
    assert_eq!(changes.timer.map(|timer| timer.wave), Some(1));
}

#[test]
fn a_released_alert_nobody_can_take_is_unmatched_at_once() {
    let snapshot = alert_at(AlertStatus::Triage, 0);
    let changes = written(run(&snapshot, Trigger::Deadline { wave: 0 }, Vec::new()));
    assert_eq!(changes.status, Some(AlertStatus::Unmatched));
    assert_eq!(changes.events.first(), Some(&Event::Released { by: None }));
    assert_eq!(changes.events.last(), Some(&Event::Unmatched));
    assert_eq!(changes.timer, None);
}

#[test]
fn a_late_triage_timer_of_a_released_alert_changes_nothing() {
    let snapshot = alert_at(AlertStatus::Dispatching, 1);
    assert_eq!(
        plan(&snapshot, Trigger::Deadline { wave: 0 }, now(), no_matcher),
        Plan::Nothing(Skip::StaleDeadline {
            deadline: 0,
            current: 1
        })
    );
}
