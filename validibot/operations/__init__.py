"""The Django side that talks to Dagster: GraphQL client, HTTP trigger, sync, doctor, status."""
