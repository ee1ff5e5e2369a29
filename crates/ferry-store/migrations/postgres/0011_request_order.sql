-- A run reads its projects' requests in id order above a watermark; other
-- sites' requests (those copied to the destination among them) lie between
-- and must not be read.
CREATE INDEX requests_project_order ON requests (project_id, id);
