-- Every listing walks an index from its cursor (issue 14), so a page costs the same
-- however many rows the listing has. Most already had theirs: owns' primary key
-- (user, notebook), parent_of_parent and collaborates_on_notebook (which carry the
-- primary key's other column), activity_notebook, audit_resource, api_keys_user,
-- upload_jobs_notebook, document_notebook and document_versions' unique
-- (document, number). These two were missing.

-- Public notebooks, by id: the listing filters on `status != 'deleted'` as this
-- index does, so deleted notebooks are not even walked.
CREATE INDEX notebook_public ON notebooks (visibility, id) WHERE status != 'deleted';

-- A user's invitations and grants in one status, by notebook.
CREATE INDEX collaborates_on_user_status ON collaborates_on (user_id, status, notebook_id);
