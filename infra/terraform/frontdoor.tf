# Azure Front Door: the public entry (TLS, load balancing over the edge replicas' ingress, health probes) and,
# with enable_cdn, the CDN for segments: /media/* is cached at Front Door's POPs as the edge's Cache-Control
# says (public media: a year, immutable; private media: "private", so never stored). Everything else passes
# through uncached.
resource "azurerm_cdn_frontdoor_profile" "main" {
  name                     = "${var.name}-fd"
  resource_group_name      = azurerm_resource_group.main.name
  sku_name                 = "Standard_AzureFrontDoor"
  response_timeout_seconds = 120 # uploads stream through to a node
  tags                     = var.tags
}

resource "azurerm_cdn_frontdoor_endpoint" "main" {
  name                     = "${var.name}-${random_string.suffix.result}"
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.main.id
  tags                     = var.tags
}

resource "azurerm_cdn_frontdoor_origin_group" "edge" {
  name                     = "edge"
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.main.id
  session_affinity_enabled = false

  load_balancing {
    sample_size                        = 4
    successful_samples_required        = 3
    additional_latency_in_milliseconds = 50
  }

  # /readyz goes through nginx to an API node, which checks database, broker and storage.
  health_probe {
    protocol            = "Https"
    path                = "/readyz"
    request_type        = "GET"
    interval_in_seconds = 30
  }
}

resource "azurerm_cdn_frontdoor_origin" "edge" {
  name                           = "edge"
  cdn_frontdoor_origin_group_id  = azurerm_cdn_frontdoor_origin_group.edge.id
  enabled                        = true
  host_name                      = azurerm_container_app.edge.ingress[0].fqdn
  origin_host_header             = azurerm_container_app.edge.ingress[0].fqdn
  http_port                      = 80
  https_port                     = 443
  certificate_name_check_enabled = true
  priority                       = 1
  weight                         = 1000
}

resource "azurerm_cdn_frontdoor_route" "app" {
  name                          = "app"
  cdn_frontdoor_endpoint_id     = azurerm_cdn_frontdoor_endpoint.main.id
  cdn_frontdoor_origin_group_id = azurerm_cdn_frontdoor_origin_group.edge.id
  cdn_frontdoor_origin_ids      = [azurerm_cdn_frontdoor_origin.edge.id]
  patterns_to_match             = ["/*"]
  supported_protocols           = ["Http", "Https"]
  https_redirect_enabled        = true
  forwarding_protocol           = "HttpsOnly"
  link_to_default_domain        = true
  # No cache block: pages, API and playlists are never cached by Front Door (nginx micro-caches public playlists).
}

resource "azurerm_cdn_frontdoor_route" "media" {
  name                          = "media"
  cdn_frontdoor_endpoint_id     = azurerm_cdn_frontdoor_endpoint.main.id
  cdn_frontdoor_origin_group_id = azurerm_cdn_frontdoor_origin_group.edge.id
  cdn_frontdoor_origin_ids      = [azurerm_cdn_frontdoor_origin.edge.id]
  patterns_to_match             = ["/media/*"]
  supported_protocols           = ["Http", "Https"]
  https_redirect_enabled        = true
  forwarding_protocol           = "HttpsOnly"
  link_to_default_domain        = true

  dynamic "cache" {
    for_each = var.enable_cdn ? [1] : []
    content {
      # Signed URLs (?e=&st=) of private media reach the edge with their query; their responses are
      # Cache-Control: private and never cached. Public media URLs have no query.
      query_string_caching_behavior = "UseQueryString"
      compression_enabled           = false # segments are already compressed video
    }
  }
}
