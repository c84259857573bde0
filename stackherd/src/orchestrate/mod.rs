//! What a command does around the engines: the preparation every start shares
//! (choosing ports, building, clearing leftovers), a monitor's takeover of a start in
//! progress, and the overview of what runs that `status` and the UI show.

pub mod overview;
pub mod prepare;
pub mod takeover;
