-- The team's first migration: written to run again and again (each start runs it).
CREATE TABLE IF NOT EXISTS items (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE
);
INSERT INTO items (name) VALUES ('first') ON CONFLICT (name) DO NOTHING;
