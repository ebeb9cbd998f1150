//! Journeys across service boundaries.

mod front_door;
mod support;
