//! (to be built) Figures for the dashboard.
