"""Delete-my-data: removing everything a person has in Elasticsearch and Redis. May import every other shared package."""
