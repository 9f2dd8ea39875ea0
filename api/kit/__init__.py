"""Small helpers with one home each, shared by the services and routes."""
