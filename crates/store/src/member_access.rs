//! (to be built) One-time codes and signed links for the member page.
