output "url" {
  description = "The site: Front Door's endpoint (add a custom domain to the endpoint for your own name)."
  value       = "https://${azurerm_cdn_frontdoor_endpoint.main.host_name}/"
}

output "edge_fqdn" {
  description = "The nginx edge's own address (Front Door's origin)."
  value       = azurerm_container_app.edge.ingress[0].fqdn
}

output "migrate_job" {
  description = "Run before each release: az containerapp job start -g <resource_group> -n <migrate_job>."
  value       = azurerm_container_app_job.migrate.name
}

output "resource_group" {
  value = azurerm_resource_group.main.name
}

output "storage_account" {
  value = azurerm_storage_account.main.name
}

output "playback_secret" {
  description = "STREAMIFY_PLAYBACK_SECRET of this deployment (terraform output -raw playback_secret)."
  value       = local.playback_secret
  sensitive   = true
}
