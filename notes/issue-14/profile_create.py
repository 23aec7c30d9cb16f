import uuid, json, sys
from neo4j import GraphDatabase
d = GraphDatabase.driver("bolt://127.0.0.1:27687", auth=("neo4j","perf-password"))
RECORD_CHANGE = """CALL { WITH n
     CREATE (ae:ActivityEvent {id: $rc_event_id, notebook_id: n.id, event_type: $rc_event_type,
       details: $rc_details, visibility: 'private', created_at: datetime($rc_at)})-[:ABOUT]->(n)
     CREATE (al:AuditLog {id: $rc_audit_id, action: $rc_action, resource_type: 'notebook', resource_id: n.id,
       details: $rc_details, ip_address: $rc_ip, user_agent: $rc_agent, created_at: datetime($rc_at)})-[:ON_RESOURCE]->(n)
     FOREACH (e IN $rc_events | CREATE (:OutboxEvent:OutboxPending {id: e.id, topic: e.topic, key: e.key, payload: e.payload,
       created_at: datetime($rc_at)}))
     WITH ae, al OPTIONAL MATCH (u:User {id: $rc_actor})
     FOREACH (x IN CASE WHEN u IS NULL THEN [] ELSE [u] END |
       CREATE (x)-[:TRIGGERED {triggered_at: datetime($rc_at)}]->(ae) CREATE (al)-[:PERFORMED_BY]->(x)) }"""
ATTACH_TAGS = """CALL { WITH n UNWIND coalesce(n.tags, []) AS name
     MERGE (t:Tag {name: name}) ON CREATE SET t.created_at = datetime($rc_at)
     MERGE (n)-[r:TAGGED_WITH]->(t) ON CREATE SET r.tagged_at = datetime($rc_at), r.tagged_by = $rc_actor }"""
NOTEBOOK_RETURN = """WITH n, owner OPTIONAL MATCH (parent:Notebook)-[:PARENT_OF]->(n)
     RETURN n.id AS id, owner.id AS owner_id, parent.id AS parent_id, n.name AS name"""
Q = f"""MATCH (owner:User {{id: $owner_id}}) WHERE owner.status <> 'deleted'
 OPTIONAL MATCH (parent:Notebook {{id: $parent_id}})
 CREATE (n:Notebook {{id: $id, owner_id: owner.id, parent_id: parent.id, name: $name,
 description: $description, visibility: $visibility, status: 'active',
 compliance_settings: $settings, document_count: 0, total_size_bytes: 0, tags: $tags,
 search_text: $search_text, created_at: datetime($at), updated_at: datetime($at),
 version: 1, is_template: $is_template}})
 CREATE (owner)-[:OWNS {{created_at: datetime($at)}}]->(n)
 FOREACH (p IN CASE WHEN parent IS NULL THEN [] ELSE [parent] END |
   CREATE (p)-[:PARENT_OF {{created_at: datetime($at)}}]->(n))
 WITH n, owner {ATTACH_TAGS} {RECORD_CHANGE} {NOTEBOOK_RETURN}"""
with d.session() as s:
    owner = s.run("MATCH (u:User)-[:OWNS]->() RETURN u.id AS id, count(*) AS c ORDER BY c DESC LIMIT 1").single()
    print("owner", owner["id"], owner["c"])
    import datetime
    at = datetime.datetime.now(datetime.timezone.utc).isoformat()
    p = dict(owner_id=owner["id"], parent_id=None, id=str(uuid.uuid4()), name="profiled", description=None,
             visibility="private", settings="{}", tags=[], search_text="profiled", is_template=False, at=at,
             rc_event_id=str(uuid.uuid4()), rc_audit_id=str(uuid.uuid4()), rc_event_type="notebook_created",
             rc_action="notebook.create", rc_details="{}", rc_ip=None, rc_agent=None, rc_actor=owner["id"],
             rc_events=[dict(id=str(uuid.uuid4()), topic="aether.notebooks", key="k", payload="{}")], rc_at=at)
    res = s.run("PROFILE " + Q, **p)
    res.consume()
    summ = res.consume()
    def walk(pl, depth=0):
        print("  "*depth, pl["operatorType"], pl.get("dbHits"), pl.get("rows"), pl["arguments"].get("Details","")[:150])
        for c in pl.get("children", []): walk(c, depth+1)
    walk(summ.profile)
