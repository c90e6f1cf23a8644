"""The tenancy kernel: alliances, tenants, staff, API clients, isolation and the unit of work."""
