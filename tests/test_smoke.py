def test_openapi_document_is_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.get_json()["paths"]
    assert "/api/v1/incidents" in paths
    assert "/api/v1/incidents/{number}/transition" in paths


def test_employee_raises_incident_and_gets_a_number(world, desk):
    created = world.incident(desk.employee, impact="high", urgency="high")
    assert created["number"] == "INC000001"
    assert created["status"] == "new"
    assert created["priority"] == 1
    assert created["version"] == 1
    assert created["group"] == "Service Desk"
