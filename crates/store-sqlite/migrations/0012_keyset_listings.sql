-- Every listing walks an index from its cursor (issue 14), so a page costs the same
-- however many rows the listing has. Most already had theirs: owns' primary key
-- (user, notebook), parent_of_parent (which carries the primary key's child),
-- activity_notebook, audit_resource, upload_jobs_notebook and document_notebook.
-- This one was missing.

-- Public notebooks, by id: the listing filters on `status != 'deleted'` as this
-- index does, so deleted notebooks are not even walked.
CREATE INDEX notebook_public ON notebooks (visibility, id) WHERE status != 'deleted';
