//! Journeys across service boundaries.

mod front_door;
mod shutdown;
mod support;
