//! One simulated volunteer's mind, without any I/O: where it goes, what it does with an offer, and
//! which assignment status it reports when. The async driver ([`super::agents`]) feeds it the
//! clock and what the platform said, and carries out the [`Action`]s it answers with.
//!
//! The life of a volunteer: patrol between random waypoints; on an offer, think for a
//! human-like moment, then accept, decline, or let it expire; once assigned, set off (`en_route`),
//! travel to the scene at its own speed, report `on_scene` on arrival, stay a while, report
//! `completed`, and patrol again.

use rand::Rng;
use rand::rngs::StdRng;
use uuid::Uuid;

use super::geo::{Area, LatLng, Mover, next_waypoint};

/// How simulated volunteers behave; every duration is in seconds, drawn uniformly from its range.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Share of offers accepted (0..=1).
    pub accept_share: f64,
    /// Share of offers declined; the rest are left to expire.
    pub decline_share: f64,
    /// Time to read an offer and press accept.
    pub accept_delay_s: (f64, f64),
    /// Time to press decline.
    pub decline_delay_s: (f64, f64),
    /// Time between the accept and setting off (`en_route`).
    pub set_off_delay_s: (f64, f64),
    /// Time spent on scene before `completed`.
    pub on_scene_s: (f64, f64),
    /// Closer than this to the scene counts as arrived, in metres.
    pub arrived_within_m: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            accept_share: 0.75,
            decline_share: 0.15,
            accept_delay_s: (3.0, 12.0),
            decline_delay_s: (2.0, 8.0),
            set_off_delay_s: (2.0, 6.0),
            on_scene_s: (20.0, 60.0),
            arrived_within_m: 25.0,
        }
    }
}

/// What the volunteer means to do with an offer it is thinking about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// `POST /v1/offers/{id}/accept`.
    Accept,
    /// `POST /v1/offers/{id}/decline`.
    Decline,
    /// Do nothing: the offer expires and dispatch moves on.
    Ignore,
}

/// An assignment status the volunteer reports (`POST /v1/assignments/{id}/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Set off towards the scene.
    EnRoute,
    /// Arrived.
    OnScene,
    /// Done.
    Completed,
}

impl Status {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::EnRoute => "en_route",
            Status::OnScene => "on_scene",
            Status::Completed => "completed",
        }
    }
}

/// Something the driver must do through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Accept this offer; answer with [`Volunteer::assigned`] or [`Volunteer::dropped`].
    Accept(Uuid),
    /// Decline this offer.
    Decline(Uuid),
    /// Report this status of this assignment; on failure answer with [`Volunteer::dropped`].
    Report(Uuid, Status),
}

/// Where the volunteer is in its life (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Free, moving between waypoints.
    Patrol,
    /// Thinking about an offer until `decide_at_s`.
    Considering {
        /// The offer.
        offer: Uuid,
        /// What it will do.
        choice: Choice,
        /// When it does it (driver clock, seconds).
        decide_at_s: f64,
    },
    /// Accepted; sets off at `at_s`.
    SettingOff {
        /// The assignment.
        assignment: Uuid,
        /// The alert's position.
        scene: LatLng,
        /// When it reports `en_route`.
        at_s: f64,
    },
    /// Travelling to the scene.
    EnRoute {
        /// The assignment.
        assignment: Uuid,
    },
    /// At the scene until `until_s`.
    OnScene {
        /// The assignment.
        assignment: Uuid,
        /// When it reports `completed`.
        until_s: f64,
    },
}

/// One simulated volunteer.
#[derive(Debug)]
pub struct Volunteer {
    rng: StdRng,
    mover: Mover,
    area: Area,
    behaviour: Behaviour,
    phase: Phase,
}

impl Volunteer {
    /// A volunteer standing at `start`, moving at `speed_mps`, patrolling inside `area`.
    pub fn new(
        mut rng: StdRng,
        start: LatLng,
        speed_mps: f64,
        area: Area,
        behaviour: Behaviour,
    ) -> Self {
        let mut mover = Mover::new(start, speed_mps);
        mover.target = next_waypoint(start, &area, &mut rng);
        Self {
            rng,
            mover,
            area,
            behaviour,
            phase: Phase::Patrol,
        }
    }

    /// Where it is now.
    pub fn position(&self) -> LatLng {
        self.mover.at
    }

    /// What it is doing.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// An offer arrived at `now_s`. A free volunteer decides what to do with it (and when);
    /// one already busy with an offer or an assignment lets it expire. Answers the choice, if
    /// it will act on this offer.
    pub fn offered(&mut self, offer: Uuid, now_s: f64) -> Option<Choice> {
        if self.phase != Phase::Patrol {
            return None;
        }
        let roll: f64 = self.rng.random();
        let (choice, delay_s) = if roll < self.behaviour.accept_share {
            (Choice::Accept, self.behaviour.accept_delay_s)
        } else if roll < self.behaviour.accept_share + self.behaviour.decline_share {
            (Choice::Decline, self.behaviour.decline_delay_s)
        } else {
            (Choice::Ignore, (0.0, 0.0))
        };
        if choice == Choice::Ignore {
            return Some(choice);
        }
        self.phase = Phase::Considering {
            offer,
            choice,
            decide_at_s: now_s + self.draw(delay_s),
        };
        Some(choice)
    }

    /// The platform withdrew `offer` (covered, cancelled, expired): stop thinking about it.
    pub fn withdrawn(&mut self, offer: Uuid) {
        if matches!(self.phase, Phase::Considering { offer: o, .. } if o == offer) {
            self.phase = Phase::Patrol;
        }
    }

    /// It holds `assignment` to the alert at `scene` (its accept went through, or a coordinator
    /// assigned it): it sets off after a moment.
    pub fn assigned(&mut self, assignment: Uuid, scene: LatLng, now_s: f64) {
        let delay_s = self.draw(self.behaviour.set_off_delay_s);
        self.mover.target = self.mover.at;
        self.phase = Phase::SettingOff {
            assignment,
            scene,
            at_s: now_s + delay_s,
        };
    }

    /// The current job ended without it (accept refused, assignment withdrawn, alert cancelled,
    /// a status the platform would not take): back to patrol.
    pub fn dropped(&mut self) {
        self.phase = Phase::Patrol;
        self.mover.target = next_waypoint(self.mover.at, &self.area, &mut self.rng);
    }

    /// The assignment it works on, if any.
    pub fn assignment(&self) -> Option<Uuid> {
        match self.phase {
            Phase::SettingOff { assignment, .. }
            | Phase::EnRoute { assignment }
            | Phase::OnScene { assignment, .. } => Some(assignment),
            Phase::Patrol | Phase::Considering { .. } => None,
        }
    }

    /// Moves `dt_s` seconds on, to `now_s`; answers what to tell the platform, if anything.
    pub fn tick(&mut self, now_s: f64, dt_s: f64) -> Option<Action> {
        let arrived = self.mover.advance(dt_s);
        match self.phase.clone() {
            Phase::Patrol => {
                if arrived {
                    self.mover.target = next_waypoint(self.mover.at, &self.area, &mut self.rng);
                }
                None
            }
            Phase::Considering {
                offer,
                choice,
                decide_at_s,
            } => {
                if now_s < decide_at_s {
                    return None;
                }
                self.phase = Phase::Patrol;
                match choice {
                    Choice::Accept => Some(Action::Accept(offer)),
                    Choice::Decline => Some(Action::Decline(offer)),
                    Choice::Ignore => None,
                }
            }
            Phase::SettingOff {
                assignment,
                scene,
                at_s,
            } => {
                if now_s < at_s {
                    return None;
                }
                self.mover.target = scene;
                self.phase = Phase::EnRoute { assignment };
                Some(Action::Report(assignment, Status::EnRoute))
            }
            Phase::EnRoute { assignment } => {
                if self.mover.left_m() > self.behaviour.arrived_within_m && !arrived {
                    return None;
                }
                let stay_s = self.draw(self.behaviour.on_scene_s);
                self.mover.target = self.mover.at;
                self.phase = Phase::OnScene {
                    assignment,
                    until_s: now_s + stay_s,
                };
                Some(Action::Report(assignment, Status::OnScene))
            }
            Phase::OnScene {
                assignment,
                until_s,
            } => {
                if now_s < until_s {
                    return None;
                }
                self.dropped();
                Some(Action::Report(assignment, Status::Completed))
            }
        }
    }

    fn draw(&mut self, (low, high): (f64, f64)) -> f64 {
        if high > low {
            self.rng.random_range(low..high)
        } else {
            low
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::super::geo::JAKARTA;
    use super::*;

    fn volunteer(seed: u64, behaviour: Behaviour) -> Volunteer {
        let start = LatLng {
            lat: -6.2,
            lng: 106.83,
        };
        Volunteer::new(StdRng::seed_from_u64(seed), start, 10.0, JAKARTA, behaviour)
    }

    fn always(choice: Choice) -> Behaviour {
        let (accept_share, decline_share) = match choice {
            Choice::Accept => (1.0, 0.0),
            Choice::Decline => (0.0, 1.0),
            Choice::Ignore => (0.0, 0.0),
        };
        Behaviour {
            accept_share,
            decline_share,
            ..Behaviour::default()
        }
    }

    /// Ticks once a second from `from_s` until an action comes (or `limit_s` passes).
    fn run_until_action(v: &mut Volunteer, from_s: f64, limit_s: f64) -> (f64, Option<Action>) {
        let mut now = from_s;
        while now < from_s + limit_s {
            now += 1.0;
            if let Some(action) = v.tick(now, 1.0) {
                return (now, Some(action));
            }
        }
        (now, None)
    }

    #[test]
    fn patrols_inside_the_area_at_its_speed() {
        let mut v = volunteer(1, Behaviour::default());
        let mut last = v.position();
        for second in 1..=3600 {
            assert_eq!(v.tick(f64::from(second), 1.0), None, "patrol says nothing");
            let now = v.position();
            assert!(
                last.distance_m(now) <= 10.01,
                "never faster than 10 m/s: {last:?} -> {now:?}"
            );
            assert!(JAKARTA.contains(now));
            last = now;
        }
        let start = LatLng {
            lat: -6.2,
            lng: 106.83,
        };
        assert!(start.distance_m(v.position()) > 100.0, "it went somewhere");
    }

    #[test]
    fn accepts_after_a_human_delay_then_goes_en_route_on_scene_completed() {
        let mut v = volunteer(2, always(Choice::Accept));
        let offer = Uuid::now_v7();
        assert_eq!(v.offered(offer, 0.0), Some(Choice::Accept));
        assert_eq!(v.offered(Uuid::now_v7(), 0.5), None, "one offer at a time");
        let (at, action) = run_until_action(&mut v, 0.0, 60.0);
        assert_eq!(action, Some(Action::Accept(offer)));
        assert!((3.0..=13.0).contains(&at), "accepted after {at} s");

        let assignment = Uuid::now_v7();
        let scene = v.position().offset_m(1500.0, 0.0);
        v.assigned(assignment, scene, at);
        assert_eq!(v.assignment(), Some(assignment));
        let (set_off, action) = run_until_action(&mut v, at, 60.0);
        assert_eq!(action, Some(Action::Report(assignment, Status::EnRoute)));
        assert!(set_off - at <= 7.0);

        let (arrived, action) = run_until_action(&mut v, set_off, 600.0);
        assert_eq!(action, Some(Action::Report(assignment, Status::OnScene)));
        assert!(
            v.position().distance_m(scene) <= 25.0,
            "on scene means at the scene"
        );
        let travel_s = arrived - set_off;
        assert!(
            (145.0..=152.0).contains(&travel_s),
            "1.5 km at 10 m/s takes about 150 s, took {travel_s}"
        );
        let here = v.position();
        let (done, action) = run_until_action(&mut v, arrived, 120.0);
        assert_eq!(action, Some(Action::Report(assignment, Status::Completed)));
        assert!((20.0..=61.0).contains(&(done - arrived)), "stays a while");
        assert!(here.distance_m(scene) <= 25.0);
        assert_eq!(v.phase(), &Phase::Patrol, "free again");
        assert_eq!(v.assignment(), None);
    }

    #[test]
    fn declines_or_lets_expire_as_its_behaviour_says() {
        let mut v = volunteer(3, always(Choice::Decline));
        let offer = Uuid::now_v7();
        assert_eq!(v.offered(offer, 0.0), Some(Choice::Decline));
        let (_, action) = run_until_action(&mut v, 0.0, 60.0);
        assert_eq!(action, Some(Action::Decline(offer)));

        let mut v = volunteer(4, always(Choice::Ignore));
        assert_eq!(v.offered(Uuid::now_v7(), 0.0), Some(Choice::Ignore));
        assert_eq!(run_until_action(&mut v, 0.0, 120.0).1, None, "silence");
        assert_eq!(v.phase(), &Phase::Patrol, "still free for the next offer");
    }

    #[test]
    fn a_withdrawn_offer_or_a_dropped_job_sends_it_back_to_patrol() {
        let mut v = volunteer(5, always(Choice::Accept));
        let offer = Uuid::now_v7();
        v.offered(offer, 0.0);
        v.withdrawn(Uuid::now_v7());
        assert!(
            matches!(v.phase(), Phase::Considering { .. }),
            "another offer's withdrawal is not this one's"
        );
        v.withdrawn(offer);
        assert_eq!(v.phase(), &Phase::Patrol);
        assert_eq!(
            run_until_action(&mut v, 0.0, 60.0).1,
            None,
            "no late accept"
        );

        let assignment = Uuid::now_v7();
        v.assigned(assignment, v.position().offset_m(0.0, 800.0), 0.0);
        let (at, action) = run_until_action(&mut v, 0.0, 60.0);
        assert_eq!(action, Some(Action::Report(assignment, Status::EnRoute)));
        v.dropped();
        assert_eq!(v.assignment(), None);
        assert_eq!(
            run_until_action(&mut v, at, 600.0).1,
            None,
            "no on_scene for a dropped job"
        );
    }

    #[test]
    fn the_mix_of_choices_follows_the_shares() {
        let mut v = volunteer(6, Behaviour::default());
        let mut counts = [0_u32; 3];
        for _ in 0..2000 {
            let choice = v.offered(Uuid::now_v7(), 0.0).expect("free");
            counts[choice as usize] += 1;
            v.dropped();
        }
        let [accept, decline, ignore] = counts;
        assert!((1400..1600).contains(&accept), "{counts:?}");
        assert!((220..380).contains(&decline), "{counts:?}");
        assert!((120..280).contains(&ignore), "{counts:?}");
    }
}
