-- Templates: notebooks others copy to start from.
ALTER TABLE notebooks ADD COLUMN is_template INTEGER NOT NULL DEFAULT 0;
