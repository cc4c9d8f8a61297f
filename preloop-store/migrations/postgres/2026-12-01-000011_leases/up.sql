-- Named leases: work one replica at a time does (a tracker's sync) is done by the holder.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
