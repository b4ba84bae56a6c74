//! Teams: the responders of one alert see each other while they are assigned to it
//! (`responder.position`), and stop seeing each other as soon as one is not.
//!
//! A responder's position goes to their co-responders, whichever instance took it. Who is on
//! which team is read from PostgreSQL (one indexed statement) the first time a busy volunteer
//! moves and kept for [`TEAM_TTL`]; every assignment change this instance makes forgets what it
//! kept, so here a change shows at once, and one made on another instance within [`TEAM_TTL`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::DispatchService;
use crate::geo::LatLng;
use crate::messages::Message;
use crate::notify::Audience;
use crate::store::{self, TeamRow};
use crate::views::PersonRef;

/// How long a team read from PostgreSQL is trusted.
pub const TEAM_TTL: Duration = Duration::from_secs(2);

/// Most volunteers whose team is kept (responders, not everyone on duty); beyond it the oldest
/// half is forgotten.
const TEAMS_KEPT: usize = 10_000;

/// The teams this instance read lately, by volunteer (`None`: not on a team).
#[derive(Debug, Default)]
pub(crate) struct Teams {
    known: Mutex<HashMap<Uuid, (Instant, Option<TeamRow>)>>,
}

impl Teams {
    /// Forgets every team (an assignment started or ended).
    pub(crate) fn forget_all(&self) {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn fresh(&self, volunteer: Uuid) -> Option<Option<TeamRow>> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let (read_at, team) = known.get(&volunteer)?;
        (read_at.elapsed() < TEAM_TTL).then(|| team.clone())
    }

    fn keep(&self, volunteer: Uuid, team: Option<TeamRow>) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= TEAMS_KEPT {
            let mut ages: Vec<Instant> = known.values().map(|(at, _)| *at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            known.retain(|_, (at, _)| *at > cutoff);
        }
        known.insert(volunteer, (Instant::now(), team));
    }
}

impl DispatchService {
    /// Shows a responder's new position to the other responders of their alert. Only busy
    /// volunteers have a team; a failed read is logged (the next position tries again).
    pub(crate) async fn publish_to_team(&self, volunteer: Uuid, at: LatLng) {
        if !self.index.is_busy(volunteer) {
            return;
        }
        let team = match self.teams.fresh(volunteer) {
            Some(team) => team,
            None => match store::team_of(&self.pool, volunteer).await {
                Ok(team) => {
                    self.teams.keep(volunteer, team.clone());
                    team
                }
                Err(error) => {
                    tracing::debug!(%error, %volunteer, "team not read; position not shared");
                    return;
                }
            },
        };
        let Some(team) = team.filter(|team| !team.mates.is_empty()) else {
            return;
        };
        self.notifier.publish(
            &[Audience::Users(team.mates)],
            &Message::ResponderPosition {
                alert_id: team.alert_id,
                volunteer: PersonRef {
                    id: volunteer,
                    name: team.volunteer_name,
                },
                role: team.role,
                lat: at.lat(),
                lng: at.lng(),
            },
        );
    }
}
