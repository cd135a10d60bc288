"""One router per area of the API; each route validates, calls a core service, returns."""
